//! The `ringmail-load` command line.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use ringmail_load::{run, Options};

fn main() -> ExitCode {
    let opts = Options::parse();
    if let Some(out) = &opts.oauth_jwks_out {
        if let Err(e) = ringmail_load::oauth::write_jwks(&opts, out) {
            eprintln!("ringmail-load: {e}");
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    let json = opts.json.clone();
    let summary = match run(opts, |line| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("ringmail-load: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", summary.to_text());
    if let Some(path) = json {
        let written = serde_json::to_vec_pretty(&summary)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&path, bytes).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("ringmail-load: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if summary.error_count > 0 {
        // Scripts can tell a clean run from one with errors.
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
