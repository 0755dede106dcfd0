import CSystemd
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's log. Under systemd every entry goes to the journal as structured fields, so
/// `journalctl -u lookaheadd PATH=/models/q.gguf` finds it; elsewhere each entry is one line on stderr:
///
///     2025-01-02T03:04:05.678Z info model loaded PATH=/models/q.gguf SECONDS=3.2
///
/// (UTC, milliseconds; fields sorted by key; a value with spaces, quotes, `=` or control characters is
/// quoted with `\`-escapes; newlines in the message become `\n`.) Field keys are normalised to journald's
/// rules — A–Z, 0–9 and `_`, not starting with `_` or a digit, at most 64 characters — for both outputs, so a
/// field has one name wherever it is read. Safe to share between threads: lines never interleave.
public final class Journal: Sendable {
    /// syslog severities; the raw value is the journal's PRIORITY=.
    public enum Level: Int32, Sendable, Comparable {
        case error = 3, warning = 4, notice = 5, info = 6, debug = 7

        /// Ordered by severity: `.debug < .error`.
        public static func < (a: Level, b: Level) -> Bool { a.rawValue > b.rawValue }
    }

    public enum Destination: Sendable, Equatable {
        /// Structured entries through journald's native protocol (sd_journal_sendv).
        case journal
        /// One line per entry on this file descriptor.
        case lines(fd: Int32)

        /// The journal when stderr is the journal stream systemd connected (JOURNAL_STREAM names its
        /// device and inode), else lines on stderr. Comparing the inode, as systemd.exec(5) advises, keeps
        /// a child whose stderr was redirected (`lookaheadd 2>file` in a unit's shell) writing to the file.
        public static var automatic: Destination {
            guard let stream = getenv("JOURNAL_STREAM") else { return .lines(fd: 2) }
            var st = stat()
            guard fstat(2, &st) == 0, String(cString: stream) == "\(st.st_dev):\(st.st_ino)" else { return .lines(fd: 2) }
            return .journal
        }
    }

    public let identifier: String
    public let minimumLevel: Level
    public let destination: Destination
    /// One write() per line is not enough: a line larger than a pipe's free space is written in pieces,
    /// and measured here, concurrent 1 MB entries on a pipe interleaved without this lock.
    private let lineLock = Mutex(())

    public init(identifier: String = "lookaheadd", minimumLevel: Level = .info, destination: Destination = .automatic) {
        self.identifier = identifier
        self.minimumLevel = minimumLevel
        self.destination = destination
    }

    public func log(_ level: Level, _ message: String, _ fields: [String: String] = [:],
                    file: String = #fileID, function: String = #function, line: Int = #line) {
        guard level >= minimumLevel else { return }
        let fields = fields.map { (Self.fieldName($0.key), $0.value) }.sorted { $0.0 < $1.0 }
        switch destination {
        case .journal:
            // sd_journal_sendv is itself thread-safe (one datagram per entry). It fails only for reasons
            // other than a missing journald (that it ignores); the entry then still reaches stderr.
            if Self.send(journalFields(level, message, fields, file: file, function: function, line: line)) { return }
            write(Self.line(level, message, fields, at: Self.now()), to: 2)
        case .lines(let fd):
            write(Self.line(level, message, fields, at: Self.now()), to: fd)
        }
    }

    // MARK: journal entries

    /// The entry's fields in journald's `KEY=value` form; `fields` are already normalised.
    func journalFields(_ level: Level, _ message: String, _ fields: [(String, String)],
                       file: String, function: String, line: Int) -> [String] {
        ["MESSAGE=\(message)", "PRIORITY=\(level.rawValue)", "SYSLOG_IDENTIFIER=\(identifier)",
         "CODE_FILE=\(file)", "CODE_LINE=\(line)", "CODE_FUNC=\(function)"]
            + fields.map { "\($0.0)=\($0.1)" }
    }

    /// All fields in one buffer so that every iovec points into memory alive for the whole call.
    private static func send(_ fields: [String]) -> Bool {
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes += field.utf8
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { buffer in
            var vectors = ranges.map { iovec(iov_base: buffer.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }

    /// journald silently drops fields whose names break its rules; normalising keeps them.
    static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" })
        while name.first == "_" { name.removeFirst() }
        if name.first?.isNumber ?? true { name = "F" + name }
        return String(name.prefix(64))
    }

    // MARK: lines

    static func line(_ level: Level, _ message: String, _ fields: [(String, String)], at time: timespec) -> String {
        var line = "\(timestamp(time)) \(level) \(escaped(message))"
        for (key, value) in fields { line += " \(key)=\(quoted(value))" }
        return line + "\n"
    }

    private func write(_ line: String, to fd: Int32) {
        var line = line
        lineLock.withLock { _ in
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return }
                }
            }
        }
    }

    private static func now() -> timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ time: timespec) -> String {
        var seconds = time.tv_sec
        var utc = tm()
        gmtime_r(&seconds, &utc)
        func pad(_ n: Int, _ width: Int = 2) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(utc.tm_year + 1900)-\(pad(Int(utc.tm_mon) + 1))-\(pad(Int(utc.tm_mday)))"
            + "T\(pad(Int(utc.tm_hour))):\(pad(Int(utc.tm_min))):\(pad(Int(utc.tm_sec)))"
            + ".\(pad(time.tv_nsec / 1_000_000, 3))Z"
    }

    private static func escaped(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy {
            $0.value > 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "=" && $0 != "\\"
        }
        return plain ? value : "\"\(escaped(value))\""
    }
}
