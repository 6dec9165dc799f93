//! `halosync run` as a child process, as systemd would run it: started on
//! the bench's config, waited for until `/readyz` answers, measured through
//! `/proc`, and stopped at the end of the phase.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::measure::status_kb;
use super::workload::{SECRET_VALUE, SECRET_VAR};

/// How long the service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `halosync` child; killed when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Resident memory now, in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        status_kb(&self.pid(), "VmRSS")
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `exe` with `args` on the bench's config, its output in `log`.
pub fn halosync(
    exe: &Path,
    config: &Path,
    args: &[&str],
    log: &Path,
) -> Result<Command, BenchError> {
    let io = |e: std::io::Error| BenchError::Io(format!("{}: {e}", log.display()));
    let stderr = std::fs::File::create(log).map_err(io)?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env(SECRET_VAR, SECRET_VALUE)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::from(stderr));
    Ok(command)
}

/// Runs a halosync command to the end; its stdout, or an error quoting its log.
pub fn run_to_end(
    exe: &Path,
    config: &Path,
    args: &[&str],
    log: &Path,
) -> Result<String, BenchError> {
    let output = halosync(exe, config, args, log)?
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| BenchError::Io(format!("cannot run {}: {e}", exe.display())))?;
    if !output.status.success() {
        return Err(BenchError::Halosync(format!(
            "`halosync {}` failed ({}): {}",
            args.join(" "),
            output.status,
            tail(log)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Starts `halosync run` and waits until its `/readyz` answers 200.
pub async fn start_service(
    exe: &Path,
    config: &Path,
    admin_port: u16,
    log: &Path,
) -> Result<ChildProcess, BenchError> {
    let child = halosync(exe, config, &["run"], log)?
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Io(format!("cannot start {}: {e}", exe.display())))?;
    let mut service = ChildProcess { child };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| BenchError::Io(e.to_string()))?;
    let url = format!("http://127.0.0.1:{admin_port}/readyz");
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = service.child.try_wait() {
            return Err(BenchError::Halosync(format!(
                "`halosync run` exited ({status}): {}",
                tail(log)
            )));
        }
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(service);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::Halosync(format!(
        "`halosync run` was not ready within {READY_TIMEOUT:?}: {}",
        tail(log)
    )))
}

/// The last lines of a child's log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// A free loopback port (the simulator and the service bind 127.0.0.1).
pub fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError::Io(format!("no free loopback port: {e}")))
}
