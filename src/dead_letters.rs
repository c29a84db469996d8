//! `shippy events`: list the dead letters of the Redis event streams and replay them, on top of the kit's
//! [`RedisBus::dead_letters`] and [`RedisBus::replay_dead_letter`].

use std::fmt::Write as _;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use shippy_kit::events::{DeadLetter, RedisBus};

use crate::settings::Settings;

/// At most this many dead letters are read per stream (listing and `--all`).
pub const MAX_PER_STREAM: usize = 10_000;

/// `shippy events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List the dead letters (events a consumer group gave up on), oldest first, of one stream or all.
    DeadLetters(StreamArg),
    /// Publish dead letters again on their stream (groups that handled them already ignore them) and
    /// remove them from the dead letters.
    Replay(ReplayArgs),
}

/// Which stream.
#[derive(Debug, Args)]
pub struct StreamArg {
    /// A logical stream (`consignment`, `vessel`, `log`, ...); every stream with dead letters if absent.
    #[arg(long, value_name = "S")]
    pub stream: Option<String>,
}

/// `shippy events replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dead-letter ids as `dead-letters` prints them.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Replay every dead letter (of `--stream`, or of every stream).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub stream: StreamArg,
}

/// Runs an `events` subcommand against the Redis at `REDIS_URL`; returns what to print.
pub async fn run(command: EventsCommand, settings: &Settings) -> anyhow::Result<String> {
    let Some(url) = settings.redis_url.as_deref() else {
        bail!("REDIS_URL is not set: dead letters live in Redis streams")
    };
    let bus = RedisBus::open(url, settings.events.clone()).context("cannot open the event bus")?;
    match command {
        EventsCommand::DeadLetters(args) => list(&bus, args.stream.as_deref()).await,
        EventsCommand::Replay(args) => replay(&bus, &args).await,
    }
}

async fn streams(bus: &RedisBus, stream: Option<&str>) -> anyhow::Result<Vec<String>> {
    Ok(match stream {
        Some(stream) => vec![stream.to_owned()],
        None => bus.dead_letter_streams().await?,
    })
}

async fn list(bus: &RedisBus, stream: Option<&str>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut total = 0;
    for stream in streams(bus, stream).await? {
        for letter in bus.dead_letters(&stream, MAX_PER_STREAM).await? {
            total += 1;
            out.push_str(&line(&letter));
        }
    }
    let _ = writeln!(out, "{total} dead letter(s)");
    Ok(out)
}

/// One dead letter on one line: stream, id, group, deliveries, event kind and id, reason.
pub fn line(letter: &DeadLetter) -> String {
    let event = match &letter.event {
        Ok(event) => format!("{} {}", event.kind, event.event_id),
        Err(reason) => format!("(undecodable: {reason})"),
    };
    format!(
        "{} {} group={} deliveries={} {} reason={}\n",
        letter.stream, letter.id, letter.group, letter.deliveries, event, letter.reason
    )
}

async fn replay(bus: &RedisBus, args: &ReplayArgs) -> anyhow::Result<String> {
    let streams = streams(bus, args.stream.stream.as_deref()).await?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    if args.all {
        for stream in &streams {
            for letter in bus.dead_letters(stream, MAX_PER_STREAM).await? {
                wanted.push((stream.clone(), letter.id));
            }
        }
    } else {
        // An id names an entry of one dead-letter stream: find which.
        for id in &args.ids {
            let mut found = false;
            for stream in &streams {
                let letters = bus.dead_letters(stream, MAX_PER_STREAM).await?;
                if letters.iter().any(|l| &l.id == id) {
                    wanted.push((stream.clone(), id.clone()));
                    found = true;
                    break;
                }
            }
            if !found {
                bail!("no dead letter {id}");
            }
        }
    }
    let mut out = String::new();
    for (stream, id) in &wanted {
        if let Some(letter) = bus.replay_dead_letter(stream, id).await? {
            let _ = write!(out, "replayed {}", line(&letter));
        }
    }
    let _ = writeln!(out, "{} dead letter(s) replayed", wanted.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use shippy_kit::{
        CancellationToken,
        config::EventsConfig,
        consumer::{Consumer, HandleError, Handler},
        events::{Event, EventBus},
    };

    use super::*;

    struct Refuse;

    #[async_trait::async_trait]
    impl Handler for Refuse {
        async fn handle(&self, _event: &Event) -> Result<(), HandleError> {
            Err(HandleError::Reject("refused".into()))
        }
    }

    fn settings() -> Option<Settings> {
        let url = std::env::var("TEST_REDIS_URL").ok()?;
        let mut events = EventsConfig {
            // A prefix of its own: other tests share this Redis.
            stream_prefix: format!("dl-{}:", uuid::Uuid::now_v7()),
            ..EventsConfig::default()
        };
        events.consumer.block = Duration::from_millis(100);
        Some(Settings {
            redis_url: Some(url),
            events,
            ..Settings::default()
        })
    }

    fn ids(listing: &str) -> Vec<String> {
        listing
            .lines()
            .filter(|l| l.starts_with("log "))
            .map(|l| l.split(' ').nth(1).unwrap_or_default().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn dead_letters_are_listed_and_replayed_by_id_and_all() {
        let Some(settings) = settings() else {
            eprintln!("TEST_REDIS_URL is not set; skipped");
            return;
        };
        let bus = Arc::new(
            RedisBus::open(
                settings.redis_url.as_deref().unwrap(),
                settings.events.clone(),
            )
            .unwrap(),
        );
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn(
            Consumer::new(
                bus.clone(),
                "log",
                "g",
                Refuse,
                settings.events.consumer.clone(),
            )
            .run(shutdown.clone()),
        );
        for n in 0..3 {
            let event = Event::new(
                "log",
                "test",
                "test.happened",
                None,
                format!("event {n}"),
                serde_json::json!({ "n": n }),
            );
            bus.publish(&event).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.dead_letters("log", 100).await.unwrap().len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "no dead letters");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        consumer.await.unwrap();

        let listing = run(
            EventsCommand::DeadLetters(StreamArg { stream: None }),
            &settings,
        )
        .await
        .unwrap();
        let found = ids(&listing);
        assert_eq!(found.len(), 3, "{listing}");
        assert!(
            listing.contains("test.happened") && listing.contains("reason=refused"),
            "{listing}"
        );
        assert!(listing.ends_with("3 dead letter(s)\n"), "{listing}");

        let one = ReplayArgs {
            ids: vec![found[0].clone()],
            all: false,
            stream: StreamArg { stream: None },
        };
        let out = run(EventsCommand::Replay(one), &settings).await.unwrap();
        assert!(out.ends_with("1 dead letter(s) replayed\n"), "{out}");
        let unknown = ReplayArgs {
            ids: vec![found[0].clone()],
            all: false,
            stream: StreamArg {
                stream: Some("log".into()),
            },
        };
        let error = run(EventsCommand::Replay(unknown), &settings)
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), format!("no dead letter {}", found[0]));

        let all = ReplayArgs {
            ids: Vec::new(),
            all: true,
            stream: StreamArg {
                stream: Some("log".into()),
            },
        };
        let out = run(EventsCommand::Replay(all), &settings).await.unwrap();
        assert!(out.ends_with("2 dead letter(s) replayed\n"), "{out}");
        let listing = run(
            EventsCommand::DeadLetters(StreamArg {
                stream: Some("log".into()),
            }),
            &settings,
        )
        .await
        .unwrap();
        assert_eq!(listing, "0 dead letter(s)\n");
    }

    #[test]
    fn replay_takes_ids_or_all_but_not_both_nor_neither() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args);
        assert!(parse(&["shippy", "events", "replay"]).is_err());
        assert!(parse(&["shippy", "events", "replay", "1-0", "--all"]).is_err());
        assert!(parse(&["shippy", "events", "replay", "1-0", "2-0"]).is_ok());
        assert!(parse(&["shippy", "events", "replay", "--all", "--stream", "vessel"]).is_ok());
        assert!(parse(&["shippy", "events", "dead-letters", "--stream", "log"]).is_ok());
    }

    #[tokio::test]
    async fn without_redis_there_are_no_dead_letters_to_read() {
        let error = run(
            EventsCommand::DeadLetters(StreamArg { stream: None }),
            &Settings::default(),
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("REDIS_URL is not set"),
            "{error}"
        );
    }
}
