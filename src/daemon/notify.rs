//! systemd's notification protocol (`sd_notify(3)`): `READY=1`, `STATUS=`,
//! `WATCHDOG=1` and `STOPPING=1`, sent as datagrams to `$NOTIFY_SOCKET`.
//!
//! Hand-written rather than taken from the `sd-notify` crate: that crate
//! reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` from the process environment
//! only, so testing the daemon in-process would need `std::env::set_var`,
//! which is unsound beside other threads (and banned here). The protocol is
//! one datagram per message; this module is the whole of it.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::config::Environment;

/// Where (and whether) to tell systemd about the service's state.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` the way
    /// systemd sets them for a `Type=notify` service.
    pub fn from_env(env: &Environment) -> Self {
        let watchdog_is_ours = env
            .var("WATCHDOG_PID")
            .is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = env
            .var("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && watchdog_is_ours)
            .map(Duration::from_micros);
        Self {
            socket: env.var("NOTIFY_SOCKET"),
            watchdog,
        }
    }

    /// A notifier that sends nothing (not started by systemd).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// How often to send `WATCHDOG=1`: half the watchdog timeout, as
    /// `sd_watchdog_enabled(3)` recommends, so one late ping is not fatal.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// The service finished starting up.
    pub fn ready(&self) {
        self.send("READY=1\n");
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, text: &str) {
        // A newline would end the STATUS= field and start a bogus one.
        let line: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}\n"));
    }

    /// The service is alive (for `WatchdogSec=`).
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }

    /// The service began shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\n");
    }

    /// Failing to notify must never stop the service; systemd acts on a
    /// missing notification itself (start timeout, watchdog).
    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        if let Err(error) = send_datagram(socket, message.as_bytes()) {
            tracing::warn!(socket = %socket, %error, "could not notify systemd");
        }
    }
}

fn send_datagram(socket: &str, message: &[u8]) -> io::Result<()> {
    let address = match socket.strip_prefix('@') {
        // systemd uses Linux's abstract socket namespace when the name
        // starts with '@'.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(socket)?,
    };
    let sender = UnixDatagram::unbound()?;
    // A receiver that stops reading fills its queue; a blocking send would
    // then stall the async worker that sends, and with it the service.
    sender.set_nonblocking(true)?;
    let sent = sender.send_to_addr(message, &address)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_one_datagram_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::from_env(&Environment::fixed([(
            "NOTIFY_SOCKET",
            path.to_str().expect("utf-8 path"),
        )]));
        notifier.ready();
        notifier.status("pull ok\nsecond line");
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"READY=1\n");
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"STATUS=pull ok second line\n");
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_and_only_for_our_pid() {
        let ours = Notifier::from_env(&Environment::fixed([("WATCHDOG_USEC", "60000000")]));
        assert_eq!(ours.watchdog_interval(), Some(Duration::from_secs(30)));
        let someone_elses = Notifier::from_env(&Environment::fixed([
            ("WATCHDOG_USEC", "60000000"),
            ("WATCHDOG_PID", "1"),
        ]));
        assert_eq!(someone_elses.watchdog_interval(), None);
        assert_eq!(Notifier::disabled().watchdog_interval(), None);
    }
}
