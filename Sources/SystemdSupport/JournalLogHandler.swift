import Logging

/// swift-log's backend for the daemon: every `Logger` in every module writes through a `Journal`
/// (structured journal entries under systemd, one line each on stderr elsewhere). Metadata become
/// fields, the logger's label the `LOGGER` field.
public struct JournalLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let journal: Journal

    public init(label: String, journal: Journal, logLevel: Logger.Level = .info) {
        self.label = label
        self.journal = journal
        self.logLevel = logLevel
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = ["LOGGER": label]
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { fields[key] = "\(value)" }
        journal.log(Journal.Level(event.level), event.message.description, fields,
                    file: event.file, function: event.function, line: Int(event.line))
    }
}

extension Journal.Level {
    /// swift-log has seven levels, syslog's journal the five the daemon uses: trace is debug and
    /// critical is error.
    public init(_ level: Logger.Level) {
        switch level {
        case .trace, .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error, .critical: self = .error
        }
    }
}
