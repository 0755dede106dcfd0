import DaemonConfig
#if canImport(Glibc)
import Glibc
#endif

/// The job queue's time: unix seconds for what the store records, and the local time of day that
/// decides whether the drain window is open.
public struct JobClock: Sendable {
    /// Test hook (docs/protocol.md): `LOOKAHEAD_FAKE_TIME=HH:MM` in the daemon's environment fixes
    /// the time of day the drain window is judged by, so a test need not wait for 22:00.
    /// Timestamps and deadlines stay on the real clock.
    public static let fakeTimeVariable = "LOOKAHEAD_FAKE_TIME"

    private let fixedMinute: Int?

    public init(environment: [String: String]) throws(ServerError) {
        guard let fake = environment[Self.fakeTimeVariable], !fake.isEmpty else {
            fixedMinute = nil
            return
        }
        guard let minute = DrainWindow.minutes(Substring(fake)) else {
            throw ServerError("\(Self.fakeTimeVariable)='\(fake)' is not HH:MM")
        }
        fixedMinute = minute
    }

    /// Unix seconds.
    public func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Minutes since local midnight (the zone of `TZ`, else the system's).
    public func minuteOfDay() -> Int {
        if let fixedMinute { return fixedMinute }
        var seconds = time(nil)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return Int(parts.tm_hour) * 60 + Int(parts.tm_min)
    }
}
