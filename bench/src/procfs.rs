//! Process CPU time and peak memory read from Linux `/proc`, to measure a router from outside.
//!
//! CPU time is `utime + stime` from `/proc/<pid>/stat` (all threads, in clock ticks); peak memory is
//! `VmHWM` from `/proc/<pid>/status`, the resident-set high-water mark since the process started.

use std::{fs, io};

/// Linux's `USER_HZ`, the unit of `/proc/<pid>/stat` times, on every mainstream architecture.
/// `bench/run.sh` passes `getconf CLK_TCK` to be sure.
pub const DEFAULT_CLK_TCK: u64 = 100;

/// User plus system CPU time the process has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| invalid(format!("unexpected /proc/{pid}/stat format")))
}

/// The process's peak resident set size so far, in KiB.
pub fn peak_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_peak_rss_kib(&status).ok_or_else(|| invalid(format!("no VmHWM in /proc/{pid}/status")))
}

/// CPU time of the whole machine so far, all CPUs together, in clock ticks: `(busy, total)` from the
/// first line of `/proc/stat`. Busy is everything but `idle` and `iowait`, so the busy share of a
/// window tells how loaded the machine was, our processes and everyone else's.
pub fn machine_ticks() -> io::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat")?;
    parse_machine_ticks(&stat).ok_or_else(|| invalid("unexpected /proc/stat format".to_owned()))
}

fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    // counted in user and nice, so only the first eight add up to the total.
    if fields.len() < 5 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields[4];
    Some((total - idle, total))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `utime` and `stime` are fields 14 and 15 of `stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so counting starts after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards, so utime is the 12th of them.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_names_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 2000 0 0 0 1500 250 0 0 20 0 9 0 100 \
                    1000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 17480 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1750));
    }

    #[test]
    fn malformed_stat_is_rejected() {
        assert_eq!(parse_cpu_ticks("4242 no-parens S 1"), None);
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn peak_rss_comes_from_vmhwm() {
        let status =
            "Name:\tshippy\nVmPeak:\t  900000 kB\nVmHWM:\t   54321 kB\nVmRSS:\t   50000 kB\n";
        assert_eq!(parse_peak_rss_kib(status), Some(54_321));
        assert_eq!(parse_peak_rss_kib("Name:\tkthread\n"), None);
    }

    #[test]
    fn machine_ticks_leave_out_idle_iowait_and_guest_time() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 40 0\ncpu0 50 2 25 500 10 1 1 0 20 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((161, 1181)));
        assert_eq!(parse_machine_ticks("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(parse_machine_ticks("cpu  1 2 x 4 5\n"), None);
        assert_eq!(parse_machine_ticks("cpu  1 2 3\n"), None);
        let (busy, total) = machine_ticks().unwrap();
        assert!(busy <= total && total > 0);
    }

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        assert!(peak_rss_kib(pid).unwrap() > 0);
        cpu_ticks(pid).unwrap();
        assert!(cpu_ticks(u32::MAX).is_err(), "no such process");
    }
}
