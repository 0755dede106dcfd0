/// The local-time span in which batch jobs may run, e.g. 22:00-07:00 (wraps past midnight).
/// The start minute is inside the window, the end minute is not.
public struct DrainWindow: Sendable, Equatable, CustomStringConvertible {
    public var fromMinutes: Int
    public var toMinutes: Int

    public init(fromMinutes: Int, toMinutes: Int) {
        self.fromMinutes = fromMinutes
        self.toMinutes = toMinutes
    }

    public func contains(minuteOfDay minute: Int) -> Bool {
        fromMinutes < toMinutes
            ? (fromMinutes..<toMinutes).contains(minute)
            : minute >= fromMinutes || minute < toMinutes
    }

    public var description: String { Self.clock(fromMinutes) + "-" + Self.clock(toMinutes) }

    /// `HH:MM-HH:MM`. Equal ends are refused: they could mean "never" or "always", and
    /// "always" is already written as no window at all.
    init(parsing text: String) throws(Invalid) {
        let ends = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingBlanks() }
        guard ends.count == 2, let from = Self.minutes(ends[0]), let to = Self.minutes(ends[1]) else {
            throw Invalid("'\(text)' is not HH:MM-HH:MM (hours 00-23, minutes 00-59)")
        }
        guard from != to else {
            throw Invalid("start and end are equal; leave the value empty to drain at any time")
        }
        self.init(fromMinutes: from, toMinutes: to)
    }

    /// Minutes since midnight of an `HH:MM` time (hours 00-23, minutes 00-59); nil when malformed.
    public static func minutes(_ text: Substring) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
              let hours = Int(parts[0]), let minutes = Int(parts[1]),
              (0..<24).contains(hours), (0..<60).contains(minutes) else { return nil }
        return hours * 60 + minutes
    }

    /// `HH:MM` of minutes since midnight.
    public static func clock(_ minutes: Int) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return two(minutes / 60) + ":" + two(minutes % 60)
    }
}
