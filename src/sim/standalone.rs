//! `autopilot-wizard sim`: the simulated tenant as a separate process for scripts, other tools
//! and the plan runner's proofs, with fault injection, token lifetimes and a request log; and
//! `sim csv`, a sample hardware-hash CSV it accepts.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::core::FaultConfig;
use super::{SimConfig, Speed, spawn_on, standalone_banner};

/// Flags of `autopilot-wizard sim`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    /// Port on 127.0.0.1 (0 picks a free one; the URL is printed on start).
    #[arg(long, default_value_t = 8400)]
    pub port: u16,
    /// How fast its background work runs: demo, realistic or test.
    #[arg(long, default_value = "demo")]
    pub speed: Speed,
    /// Share of requests answered 429 Too Many Requests with Retry-After (0.0–1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub throttle_rate: f64,
    /// Share of requests answered 503 Service Unavailable with Retry-After (0.0–1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub unavailable_rate: f64,
    /// Share of requests whose connection is dropped without an answer (0.0–1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub drop_rate: f64,
    /// Retry-After of injected 429s and 503s, in whole seconds as Graph sends it.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    pub retry_after: u64,
    /// Leave the sign-in endpoints (`/{tenant}/oauth2/…`) out of fault injection.
    #[arg(long)]
    pub no_login_faults: bool,
    /// Seed of the fault dice: the same seed and requests give the same faults.
    #[arg(long, default_value_t = 0x5eed)]
    pub fault_seed: u64,
    /// Lifetime of access tokens, e.g. 30s, 5m, 1h (Entra's default: about an hour).
    #[arg(long, value_name = "DURATION", default_value = "3599s", value_parser = parse_duration)]
    pub token_lifetime: Duration,
    /// Lifetime of refresh tokens, e.g. 10m, 90d.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = parse_duration)]
    pub refresh_token_lifetime: Duration,
    /// Append one JSON line per request (time, method, path, status, and the serials of
    /// import POSTs) to this file.
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
    /// Serve HTTPS with a certificate made at start. Its certificate authority is written to a
    /// file (named on standard output as CA_FILE=…) for the wizard's --ca-file.
    #[arg(long)]
    pub tls: bool,
    /// Items per page of a collection when the request gives no `$top` (Graph's page sizes
    /// vary by collection; small values exercise paging). Request counts depend on it: name it
    /// with any figure measured against this tenant
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=999))]
    pub page_size: u16,
    /// Where --tls writes the CA certificate (PEM). Default: a file in the temporary folder.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca_out: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCommand {
    /// Print a sample hardware-hash CSV of N devices the simulated tenant accepts (UTF-16 LE
    /// with BOM, as Get-WindowsAutopilotInfo writes it) to standard output.
    Csv {
        /// How many devices.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Group tag written on every row (adds the Group Tag column).
        #[arg(long)]
        group_tag: Option<String>,
        /// Same seed, same file. Serials are unique within a file and differ between seeds.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number: write a share such as 0.2"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not between 0 and 1: write a share such as 0.2"
        ))
    }
}

/// `30s`, `5m`, `2h`, `90d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: write e.g. 30s, 5m, 1h or 90d"))?;
    let secs = match unit.trim() {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("'{s}' is not a duration: write e.g. 30s, 5m, 1h or 90d"))?;
    if secs == 0 {
        return Err("a lifetime of zero seconds would expire every token at once".into());
    }
    Ok(Duration::from_secs(secs))
}

impl SimArgs {
    /// The tenant configuration these flags describe (demo data, as `--demo` shows).
    pub fn config(&self) -> SimConfig {
        SimConfig {
            speed: self.speed,
            faults: FaultConfig {
                rng_seed: self.fault_seed,
                throttle_rate: self.throttle_rate,
                unavailable_rate: self.unavailable_rate,
                drop_rate: self.drop_rate,
                retry_after: Duration::from_secs(self.retry_after),
                // Entra's token endpoint sheds load with 429/503 like Graph does.
                include_identity: !self.no_login_faults,
                ..FaultConfig::default()
            },
            request_log: self.request_log.clone(),
            access_token_lifetime: self.token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            tls: self.tls,
            page_size: usize::from(self.page_size),
            ..SimConfig::default()
        }
    }
}

/// Why the standalone tenant stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(
        "The simulated tenant could not listen on 127.0.0.1:{port} ({source}). Is another program using that port? Try another one with --port."
    )]
    Listen { port: u16, source: std::io::Error },
    #[error("The request log {path} could not be opened for writing ({source}).")]
    RequestLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("The certificate authority could not be written to {path} ({source}).")]
    CaOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("The simulated tenant could not make its TLS certificate ({0}).")]
    Tls(std::io::Error),
    #[error("The CSV could not be written to standard output ({0}).")]
    Output(std::io::Error),
}

/// Runs `sim` (until Ctrl-C or SIGTERM) or `sim csv`.
pub async fn run(args: SimArgs) -> Result<(), StandaloneError> {
    if let Some(SimCommand::Csv {
        count,
        group_tag,
        seed,
    }) = &args.command
    {
        let bytes = sample_csv(*count, group_tag.as_deref(), *seed);
        let mut out = std::io::stdout().lock();
        return out
            .write_all(&bytes)
            .and_then(|()| out.flush())
            .map_err(StandaloneError::Output);
    }
    if let Some(path) = &args.request_log {
        // Opened here first so a bad path is reported as such, not as a port problem.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| StandaloneError::RequestLog {
                path: path.clone(),
                source,
            })?;
    }
    let sim = spawn_on(args.config(), args.port).await.map_err(|source| {
        // Certificate generation reports `Other`; binding never does.
        if args.tls && source.kind() == std::io::ErrorKind::Other {
            StandaloneError::Tls(source)
        } else {
            StandaloneError::Listen {
                port: args.port,
                source,
            }
        }
    })?;
    let url = sim.url();
    let tenant = sim.tenant_id();
    let ca_line = match sim.ca_pem() {
        Some(pem) => {
            let path = args.ca_out.clone().unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("autopilot-wizard-sim-{}-ca.pem", sim.addr.port()))
            });
            std::fs::write(&path, pem).map_err(|source| StandaloneError::CaOut {
                path: path.clone(),
                source,
            })?;
            format!("CA_FILE={}\n", path.display())
        }
        None => String::new(),
    };
    // Machine-readable first lines (shell `KEY=value`), then the explanation for people.
    // Written without println!: a script that read the URLs and closed its end of the pipe must
    // not bring the tenant down (println! panics on a closed pipe).
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "GRAPH_URL={url}\nLOGIN_URL={url}\nTENANT_ID={tenant}\n{ca_line}\n{}",
        standalone_banner(&sim)
    );
    let _ = out.flush();
    shutdown_signal().await;
    let _ = writeln!(std::io::stderr(), "Stopping the simulated tenant.");
    // Dropping the handle stops the server gracefully; the log file has whole lines already.
    drop(sim);
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Get-WindowsAutopilotInfo's columns, in its order.
const HEADER: &str = "Device Serial Number,Windows Product ID,Hardware Hash";

const MODELS: &[(&str, &str)] = &[
    ("HP", "HP EliteBook 840 G8 Notebook PC"),
    ("LENOVO", "20K5S0B700"),
    ("Dell Inc.", "Latitude 5440"),
    ("Microsoft Corporation", "Surface Laptop 5"),
];

/// A hardware-hash CSV of `count` devices as Get-WindowsAutopilotInfo writes it: UTF-16 LE
/// with BOM, CRLF line ends, its header (plus `Group Tag` when given), one hash per device
/// that names the row's serial, manufacturer and model. Serials are unique in the file and
/// depend on `seed` only.
pub fn sample_csv(count: usize, group_tag: Option<&str>, seed: u64) -> Vec<u8> {
    let mut text = String::from(HEADER);
    if group_tag.is_some() {
        text.push_str(",Group Tag");
    }
    text.push_str("\r\n");
    // Serial: a per-seed prefix and a running number, so files with other seeds do not clash.
    let prefix = format!("{:06X}", splitmix(seed) & 0xFF_FFFF);
    for i in 0..count {
        let serial = format!("SIM{prefix}{i:06}");
        let (make, model) = MODELS[(splitmix(seed ^ i as u64) % MODELS.len() as u64) as usize];
        let hash = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            super::autopilot::build_hardware_hash(&serial, make, model, seed ^ ((i as u64) << 20)),
        );
        text.push_str(&serial);
        text.push_str(",,");
        text.push_str(&hash);
        if let Some(tag) = group_tag {
            text.push(',');
            text.push_str(&csv_field(tag));
        }
        text.push_str("\r\n");
    }
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0.2"), Ok(0.2));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("a lot").is_err());
    }

    #[test]
    fn sample_csv_is_deterministic_with_unique_serials() {
        let a = sample_csv(50, Some("HQ"), 7);
        assert_eq!(a, sample_csv(50, Some("HQ"), 7));
        assert_ne!(a, sample_csv(50, Some("HQ"), 8));
        assert_eq!(&a[..2], &[0xFF, 0xFE]);
        let units: Vec<u16> = a[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = String::from_utf16(&units).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], format!("{HEADER},Group Tag"));
        assert_eq!(lines.len(), 51);
        let serials: std::collections::HashSet<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(serials.len(), 50);
    }
}
