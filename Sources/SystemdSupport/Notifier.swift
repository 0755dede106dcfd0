import CSystemd
#if canImport(Glibc)
import Glibc
#endif

/// Messages to the service manager (sd_notify(3)) for a `Type=notify` unit. Without NOTIFY_SOCKET —
/// not started by systemd — every call does nothing and returns false, so the daemon calls them unconditionally.
public enum Notifier {
    /// Start-up (or a reload) is complete: models are loaded and requests are served.
    @discardableResult public static func ready() -> Bool { send("READY=1") }

    /// One line for `systemctl status`.
    @discardableResult public static func status(_ text: String) -> Bool {
        // A newline would start a new assignment: a status must never be able to say "READY=1".
        send("STATUS=" + String(text.map { $0.isNewline ? " " : $0 }))
    }

    /// The keep-alive ping; see `watchdogInterval`.
    @discardableResult public static func watchdog() -> Bool { send("WATCHDOG=1") }

    /// Shutdown has begun (SIGTERM received); in-flight work is being finished or checkpointed.
    @discardableResult public static func stopping() -> Bool { send("STOPPING=1") }

    /// A configuration reload has begun; call `ready()` when it is done. MONOTONIC_USEC is what
    /// `Type=notify-reload` (systemd 253+) requires to match the two; older managers ignore it.
    @discardableResult public static func reloading() -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return send("RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000)")
    }

    /// The unit's WatchdogSec=, nil when the manager expects no pings. systemd kills the service when two
    /// pings are further apart than this; ping at half of it so one slow engine tick does not trip it.
    public static var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0 else { return nil }
        return .microseconds(usec)
    }

    // The environment is kept (unset_environment = 0): the daemon notifies for its whole life.
    private static func send(_ state: String) -> Bool { sd_notify(0, state) > 0 }
}
