//! The `shippy` command: runs the whole system or any one part of it.
//!
//! [`cli`] parses the command line, [`settings`] layers defaults, config file, environment and flags,
//! [`services`] lists what can run, and [`up`] runs everything in one process.

pub mod cli;
pub mod dead_letters;
pub mod demo;
pub mod schema_tool;
pub mod services;
pub mod settings;
pub mod up;
