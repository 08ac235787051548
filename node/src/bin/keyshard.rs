//! The `keyshard` command line. Subcommands arrive with the parts they drive; for now:
//!
//! ```text
//! keyshard audit verify <FILE> [--json]
//! ```
//!
//! Exit status: 0 when the log checks out, 1 when it does not (or cannot be read), 2 on a usage
//! error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keyshard_node::audit;

#[derive(Parser)]
#[command(name = "keyshard", version, about = "keyshard node and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks an audit log's hash chain from its first line to its last.
    Verify {
        /// The audit log file.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Audit {
            command: AuditCommand::Verify { file, json },
        } => audit_verify(&file, json),
    }
}

fn audit_verify(file: &std::path::Path, json: bool) -> ExitCode {
    let result = audit::verify(file);
    if json {
        let value = match &result {
            Ok(r) => serde_json::json!({
                "ok": true,
                "lines": r.lines,
                "node": r.node,
                "last_hash": r.last_hash,
            }),
            Err(e) => serde_json::json!({
                "ok": false,
                "line": e.line,
                "error": e.what,
            }),
        };
        println!("{value}");
    } else {
        match &result {
            Ok(r) => match (&r.last_hash, r.node) {
                (Some(hash), Some(node)) => println!(
                    "{}: OK, {} lines, node {node}, last hash {hash}",
                    file.display(),
                    r.lines
                ),
                _ => println!("{}: OK, empty", file.display()),
            },
            Err(e) => eprintln!("{}: {e}", file.display()),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
