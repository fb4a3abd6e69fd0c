//! `r2mpu`: resumable, verified multipart uploads into R2 through the r2mpu Worker, and the
//! downloads, listings and development tokens that go with them.
//!
//! # Layout
//!
//! Top down: a module uses only modules named in the items below its own (a test checks it).
//!
//! - `main.rs` (here): the command line (clap derive; the doc comments are `--help`) and the
//!   one place errors become exit codes.
//! - [`upload`] and [`download`]: the two transfers, each parallel, resumable and verified.
//! - [`ranges`]: the ranges a download cuts parts into, and the part MD5s read back.
//! - [`send`]: an upload's parts on their way, through the Worker or straight to R2 with the
//!   reports that follow.
//! - [`uploads`]: the server's unfinished uploads: `uploads`, `abort --key`, and finding the
//!   upload to resume when there is no local record.
//! - [`manage`]: `status`, `abort`, `rm`, `ls`. [`token`]: `token` and `keygen`.
//! - [`pool`]: the threads both transfers send or fetch their parts with.
//! - [`concurrency`]: how many parts are in flight (pinned, or adapted to the measured
//!   throughput).
//! - [`throughput`]: that throughput, measured from the parts answered.
//! - [`direct`]: direct parts' presigned URLs, fetched in batches ahead of need.
//! - [`client`]: HTTP to the Worker: routes, bearer token, retries with backoff, problem parsing.
//! - [`resume`]: the local journals that let a transfer continue after it was interrupted.
//!   [`fileio`]: positional, hashed file ranges. [`hedge`]: asking again for a stalled range.
//! - [`parts`]: part lengths. [`etag`]: R2's ETag arithmetic. [`progress`]: bar or plain lines.
//!   [`error`]: the failure kinds. Sizes and durations (`16MiB`, `12h`) parse with [`units`],
//!   shared with the Worker.

mod client;
mod concurrency;
mod direct;
mod download;
mod error;
mod etag;
mod fileio;
mod hedge;
mod manage;
mod parts;
mod pool;
mod progress;
mod ranges;
mod resume;
mod send;
mod throughput;
mod token;
mod upload;
mod uploads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use r2mpu_api::auth::Scope;
use r2mpu_api::units;

use crate::client::{Client, RetryPolicy};
use crate::concurrency::Concurrency;
use crate::error::Error;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  usage: bad arguments or input files (including a FILE that exists without --force)
  2  the server refused the request (4xx); its problem code and detail are printed
  3  the network failed, or 408/429/5xx/409 part_in_flight answers outlasted --retry-for
  4  integrity: the bytes do not match their checksum (ETag or MD5)
  5  local I/O: a file could not be read or written";

/// Resumable, verified multipart uploads into Cloudflare R2 through the r2mpu Worker.
#[derive(Debug, Parser)]
#[command(name = "r2mpu", version, after_help = EXIT_CODES, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
struct Connection {
    /// Base URL of the r2mpu Worker.
    #[arg(long, global = true, env = "R2MPU_ENDPOINT", default_value = "http://127.0.0.1:8787")]
    endpoint: String,
    /// Bearer token (a JWT; see `r2mpu token`). Prefer the environment variable: command lines
    /// are visible to other users.
    #[arg(long, global = true, env = "R2MPU_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How long, in seconds, to keep retrying one request after a connection error, 408, 429,
    /// 5xx, 409 part_in_flight or upload_completing, waiting as the server's Retry-After says,
    /// else with exponential backoff and full jitter. Other 4xx answers are never retried.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = RetryPolicy::DEADLINE.as_secs())]
    retry_for: u64,
    /// At most this many retries of one request, within --retry-for. By default only the
    /// deadline counts (earlier builds stopped after 5 retries, however short).
    #[arg(long, global = true)]
    retries: Option<u32>,
    /// No progress output or informational notes on stderr; retries, warnings and errors are
    /// still reported.
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload FILE as KEY in parts, in parallel; resume an interrupted upload of it.
    ///
    /// Running the same command again continues where it stopped: a resume record (in
    /// $R2MPU_STATE_DIR, else $XDG_STATE_HOME/r2mpu, else ~/.local/state/r2mpu; one per
    /// endpoint, absolute path and key) holds the upload ID, the file's size and mtime, the part
    /// size and the MD5 of every part sent. The rerun asks the server which parts it has and
    /// sends only the others. The record is dropped, and the old upload aborted (best effort),
    /// when the file's size or mtime changed, when --part-size differs, or when the server
    /// says the upload is gone or aborted; the upload then starts over.
    ///
    /// Each part is hashed as it streams and R2's ETag is checked against those MD5s after
    /// completion: a mismatch exits with 4. Prints the key, size and ETag.
    #[command(after_long_help = EXIT_CODES)]
    Upload {
        /// The file to upload.
        file: PathBuf,
        /// The object key [default: the file's name].
        key: Option<String>,
        /// Bytes per part: 16MiB, 8M (binary units) or plain bytes; at least 5MiB. [default: the
        /// file in whole waves of the parts the upload starts with in flight, each part as large
        /// as that allows; rounded up to whole MiB, from 5MiB to 16MiB; more if needed to fit the
        /// file in 10,000 parts]
        #[arg(long, value_parser = units::parse_size)]
        part_size: Option<u64>,
        /// Parts sent at once, pinned. [default: adaptive: starts with what 80 MB/s needs at
        /// 256 KiB per connection per round trip (timed on a first request), 4 to 64, doubles while the
        /// throughput still grows (measured over 2 s windows), up to 64, and halves on retried
        /// failures; a long link needs many connections, loopback 4]
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: Option<u16>,
        /// Content-Type stored with the object.
        #[arg(long)]
        content_type: Option<String>,
        /// Send Content-MD5 with every part: each part is hashed before it is sent (the file is
        /// read twice, hashed once), the server checks it on arrival and records its MD5, and
        /// `upload` on another machine can then resume this upload without re-sending its parts.
        /// Off by default: the Worker's check cost it about 40% more CPU per GiB when last
        /// measured (bench/RESULTS-content-md5.md, before part bodies were read in large
        /// chunks). Without it, Content-MD5 is sent only when a part is re-sent.
        #[arg(long)]
        verify_parts: bool,
        /// Send every part through the Worker. By default parts go straight to R2 with URLs the
        /// Worker signs, when it offers them; a part R2 cannot take goes through the Worker.
        #[arg(long)]
        via_worker: bool,
        /// Start a new upload, even if a local record or the server's list of unfinished
        /// uploads offers one to continue (the recorded one is aborted).
        #[arg(long)]
        restart: bool,
    },
    /// Download KEY to FILE with parallel ranged GETs; resume an interrupted download of it.
    ///
    /// Finished ranges are recorded in FILE.r2mpu-download, which a rerun continues from (if
    /// the object's ETag and size are unchanged) and which is removed on success. The result is
    /// checked against the ETag: a plain MD5 ETag always; a multipart ETag (`…-N`) by
    /// recomputing it with the part size the object was uploaded with. Without --part-size that
    /// size is guessed (the uploader's default, or the smallest whole MiB giving N parts); if
    /// the guess does not reproduce the ETag the result is reported as "not verified" rather
    /// than failing. With --part-size a mismatch exits with 4.
    #[command(after_long_help = EXIT_CODES)]
    Download {
        /// The object key.
        key: String,
        /// Where to write [default: the key's last segment, in the current directory].
        file: Option<PathBuf>,
        /// The part size the object was uploaded with (16MiB, 8M, bytes). Ranges never cross
        /// its parts; an object of fewer parts than ranges in flight has each part cut into
        /// equal ranges of at least 1 MiB.
        #[arg(long, value_parser = units::parse_size)]
        part_size: Option<u64>,
        /// Ranges fetched at once, pinned. [default: adaptive, as for `upload`]
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: Option<u16>,
        /// Overwrite FILE if it exists (and is not a download being resumed).
        #[arg(long)]
        force: bool,
    },
    /// Show an upload's state on the server.
    Status {
        /// The upload ID (printed by `upload`).
        upload_id: String,
        /// Print the server's JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Abort an upload, discarding its parts, and forget its local resume record.
    Abort {
        /// The upload ID.
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        upload_id: Option<String>,
        /// Abort every unfinished upload of this key instead.
        #[arg(long)]
        key: Option<String>,
    },
    /// List your unfinished uploads on the server (open or completing), newest first: ID, key,
    /// status, parts and bytes received (of how many), created.
    Uploads {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// Print the JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an object (succeeds when it does not exist).
    Rm {
        /// The object key.
        key: String,
    },
    /// List objects under PREFIX: size, uploaded, ETag and key, tab-separated.
    Ls {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Print S3 credentials made from the token (POST /credentials), as the JSON aws-cli's
    /// `credential_process` reads: `credential_process = r2mpu credentials` in ~/.aws/config
    /// (with R2MPU_ENDPOINT and R2MPU_TOKEN in the environment). They expire with the token.
    Credentials,
    /// Mint a JWT from a private JWK Set, for development and tests. Prints the token.
    ///
    /// Claims: sub, scope, prefix (if given), iat, nbf, exp; the header carries the key's kid.
    /// Signs with EdDSA for an OKP Ed25519 key, ES256 for an EC P-256 key, HS256 for an oct key.
    Token {
        /// The private JWK Set to sign with.
        #[arg(long, env = "R2MPU_KEY", default_value = ".dev.key.json")]
        key: PathBuf,
        /// The subject: whose uploads these are.
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Scopes to grant, repeated or comma-separated. [default: all three]
        #[arg(long, value_delimiter = ',', value_parser = ["uploads:write", "objects:read", "objects:delete"])]
        scope: Vec<String>,
        /// Restrict the token to keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Lifetime: seconds, or 90s, 30m, 12h, 7d.
        #[arg(long, default_value = "1h", value_parser = units::parse_duration)]
        ttl: std::time::Duration,
        /// Sign with the key of this kid [default: the first private key in the file].
        #[arg(long)]
        kid: Option<String>,
    },
    /// Create an Ed25519 signing key with a random kid.
    ///
    /// Writes the private JWK Set to --out (mode 0600) and prints the public JWK Set on stdout,
    /// ready for the Worker's AUTH_JWKS.
    Keygen {
        /// Where to write the private JWK Set.
        #[arg(long, default_value = ".dev.key.json")]
        out: PathBuf,
        /// Replace --out if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("r2mpu: {error}");
            ExitCode::from(exit_code(&error))
        }
    }
}

fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Usage(_) => 1,
        Error::Refused { .. } => 2,
        Error::Unavailable(_) => 3,
        Error::Integrity(_) => 4,
        Error::Io(_) => 5,
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let Connection { endpoint, token, retry_for, retries, quiet } = cli.connection;
    let policy = RetryPolicy::new(Duration::from_secs(retry_for), retries);
    let client = |connections: usize| Client::new(&endpoint, token.clone(), policy, connections);
    match cli.command {
        Command::Upload { file, key, part_size, concurrency, content_type, verify_parts, via_worker, restart } => {
            let concurrency = Concurrency::from_flag(concurrency);
            let client = client(concurrency.most());
            let args = upload::UploadArgs {
                file,
                key,
                part_size,
                concurrency,
                content_type,
                verify_parts,
                via_worker,
                restart,
                quiet,
            };
            let object = upload::upload(&client, &args)?;
            println!("key: {}\nsize: {}\netag: {}", object.key, object.size, object.etag);
        }
        Command::Download { key, file, part_size, concurrency, force } => {
            let concurrency = Concurrency::from_flag(concurrency);
            let client = client(concurrency.most());
            let args = download::DownloadArgs { key, file, part_size, concurrency, force, quiet };
            let done = download::download(&client, &args)?;
            println!("file: {}\nsize: {}\netag: {}", done.path.display(), done.size, done.etag);
            match done.verdict {
                download::Verdict::Verified(how) => println!("verified: {how}"),
                download::Verdict::NotVerified(why) => println!("not verified: {why}"),
            }
        }
        Command::Status { upload_id, json } => manage::status(&client(1), &upload_id, json)?,
        Command::Abort { upload_id: Some(upload_id), .. } => manage::abort(&client(1), &upload_id)?,
        Command::Abort { key: Some(key), .. } => uploads::abort_key(&client(1), &key)?,
        Command::Abort { .. } => unreachable!("clap requires an upload ID or --key"),
        Command::Uploads { prefix, json } => uploads::list(&client(1), &prefix, json)?,
        Command::Rm { key } => manage::remove(&client(1), &key)?,
        Command::Ls { prefix } => manage::list(&client(1), &prefix)?,
        Command::Credentials => {
            let credentials = client(1).credentials()?;
            println!("{}", serde_json::to_string(&credentials).expect("credentials serialize"));
        }
        Command::Token { key, sub, scope, prefix, ttl, kid } => {
            let scopes = match scope.is_empty() {
                true => Scope::ALL.to_vec(),
                false => Scope::parse_claim(&scope.join(" ")),
            };
            let grant = token::Grant { sub, scopes, prefix, ttl };
            println!("{}", token::mint(&token::read_jwks(&key)?, kid.as_deref(), &grant)?);
        }
        Command::Keygen { out, force } => {
            let set = token::keygen()?;
            token::write_private(&out, &set, force)?;
            if !quiet {
                eprintln!("wrote the private key {} to {}", set.keys[0].kid.as_deref().unwrap_or(""), out.display());
            }
            println!("{}", serde_json::to_string(&set.public()).expect("a JWK Set serializes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_scopes_parse_on_the_command_line() {
        let cli = Cli::try_parse_from(["r2mpu", "upload", "f", "--part-size", "8M", "--concurrency", "2"]).unwrap();
        assert!(matches!(cli.command, Command::Upload { part_size: Some(8_388_608), concurrency: Some(2), .. }));
        let cli = Cli::try_parse_from(["r2mpu", "token", "--scope", "objects:read,uploads:write"]).unwrap();
        assert!(matches!(cli.command, Command::Token { scope, .. } if scope.len() == 2));
        assert!(Cli::try_parse_from(["r2mpu", "token", "--scope", "admin"]).is_err());
        assert!(Cli::try_parse_from(["r2mpu", "upload", "f", "--concurrency", "0"]).is_err());
    }

    /// The layout in this file's doc comment is the module graph: every `crate::NAME` a module
    /// mentions (imports, paths, doc links) names a module in an item below its own.
    #[test]
    fn each_module_uses_only_modules_below_it_in_the_layout() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
        let mut items: Vec<Vec<String>> = Vec::new();
        for line in read(&src.join("main.rs")).lines().take_while(|line| line.starts_with("//!")) {
            if line.starts_with("//! - ") {
                items.push(Vec::new());
            }
            if let Some(item) = items.last_mut() {
                item.extend(line.split("[`").skip(1).filter_map(|s| Some(s.split_once("`]")?.0.to_owned())));
            }
        }
        let item_of = |module: &str| {
            let found = items.iter().position(|item| item.iter().any(|m| m == module));
            found.unwrap_or_else(|| panic!("the layout does not name the module `{module}`"))
        };
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if module == "main" {
                continue;
            }
            let own = item_of(&module);
            for rest in read(&path).split("crate::").skip(1) {
                let used = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap();
                assert!(used == module || item_of(used) > own, "{module} uses {used}, not below it in the layout");
            }
        }
    }
}
