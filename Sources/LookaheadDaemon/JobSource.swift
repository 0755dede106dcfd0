import JobStore
import LookaheadProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Where a submitted job's JSONL comes from: the request itself, or a file the daemon reads.
enum JobSource: Sendable {
    case content(String)
    /// An absolute path. The daemon reads it with its own rights, so it takes only a file the
    /// submitting uid owns (or any file, for root): otherwise anyone could have the daemon's
    /// private files run as prompts and read the answers.
    case path(String)

    /// The `jobs.submit` parameter errors are reported against.
    var field: String {
        switch self {
        case .content: return "content"
        case .path: return "path"
        }
    }

    /// The input's lines, each checked as an `ask` with its params would be, so that a bad line
    /// fails the submission with its line number instead of failing overnight.
    func lines(owner: UInt32, maxBytes: Int, asks: AskPreparer) throws(ProtocolError) -> [ValidatedLine] {
        let bytes = try read(owner: owner, maxBytes: maxBytes)
        let lines: [ValidatedLine]
        do {
            lines = try JobInput.validate(jsonl: bytes, maxBytes: maxBytes)
        } catch {
            throw ProtocolError(.invalidParams, error.description, field: error.field ?? field)
        }
        for line in lines {
            let ask: LineAsk
            do { ask = try line.ask() } catch {
                throw ProtocolError(.invalidParams, "line \(line.line): \(error.message)", field: error.field ?? field)
            }
            do { _ = try asks.prepare(ask.params) } catch {
                let named = ask.lineError(error.message, field: error.field)
                throw ProtocolError(error.code, "line \(line.line): \(named.message)", field: named.field ?? field)
            }
        }
        return lines
    }

    /// The input's bytes; the size is judged before anything is read or parsed.
    func read(owner: UInt32, maxBytes: Int) throws(ProtocolError) -> [UInt8] {
        switch self {
        case .content(let text):
            let bytes = Array(text.utf8)
            try Self.check(size: bytes.count, maxBytes: maxBytes, field: field)
            return bytes
        case .path(let path):
            return try Self.readFile(path, owner: owner, maxBytes: maxBytes)
        }
    }

    private static func check(size: Int, maxBytes: Int, field: String) throws(ProtocolError) {
        guard size <= maxBytes else {
            throw ProtocolError(.tooLarge, "the input is \(size) bytes, over the limit of \(maxBytes) bytes (max_job_bytes)",
                                field: field)
        }
    }

    private static func readFile(_ path: String, owner: UInt32, maxBytes: Int) throws(ProtocolError) -> [UInt8] {
        func failure(_ what: String) -> ProtocolError {
            ProtocolError(.invalidParams, "path: cannot \(what) \(path): \(String(cString: strerror(errno)))", field: "path")
        }
        guard path.hasPrefix("/") else {
            throw ProtocolError(.invalidParams, "path must be absolute (the daemon's working directory is not yours), got '\(path)'", field: "path")
        }
        // O_NONBLOCK: a FIFO must not hang the reader in open(); it is refused below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        // Checked on the descriptor that is read, so a file swapped after the check is not the one read.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ProtocolError(.invalidParams, "path: \(path) is not a regular file", field: "path")
        }
        guard owner == 0 || info.st_uid == owner else {
            throw ProtocolError(.forbidden, "path: \(path) belongs to uid \(info.st_uid), not to you (uid \(owner)); send its content instead", field: "path")
        }
        try check(size: Int(info.st_size), maxBytes: maxBytes, field: "path")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw failure("read")
            }
            bytes += chunk[..<count]
            // A file that grew while being read is judged by what was read.
            try check(size: bytes.count, maxBytes: maxBytes, field: "path")
        }
    }
}
