#if canImport(Glibc)
import Glibc
#endif
import JobStore
import LookaheadProtocol

/// An arbitrary but fixed "now": 2023-11-14.
let t0: Double = 1_700_000_000

/// Permission bits of a file, or nil when it does not exist.
func mode(_ path: String) -> mode_t? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o7777
}

func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { break }
        bytes += buffer[..<n]
    }
    return bytes
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot write \(path)")
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    precondition(written == bytes.count)
}

/// Runs `body` with file access checked as user `nobody` on this thread only. CI runs the tests
/// as root, and root ignores permission bits; a changed filesystem uid drops that override for
/// the calling thread (capabilities(7)) and leaves every other thread alone. The body must be
/// synchronous so it stays on this thread.
func asNobody<T>(_ body: () throws -> T) rethrows -> T {
    guard geteuid() == 0 else { return try body() }
    typealias SetFSUID = @convention(c) (UInt32) -> Int32
    // setfsuid's header is not in Swift's Glibc module.
    guard let symbol = dlsym(nil, "setfsuid") else { fatalError("no setfsuid") }
    let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
    let nobody: UInt32 = 65534
    _ = setfsuid(nobody)
    precondition(setfsuid(nobody) == Int32(nobody), "setfsuid did not take")
    defer { _ = setfsuid(0) }
    return try body()
}

/// Input lines as a validated job: `q1`…`qN` asking `prompt i`.
func validLines(_ count: Int, prefix: String = "q") throws -> [ValidatedLine] {
    let text = (1...count).map { #"{"custom_id":"\#(prefix)\#($0)","prompt":"prompt \#($0)","max_tokens":16}"# }
        .joined(separator: "\n")
    return try JobInput.validate(jsonl: Array(text.utf8))
}

func answer(_ text: String) -> JSONValue { ["text": .string(text), "tokens": 3] }

/// The error a throwing call threw, as its type, or nil when it did not throw.
func thrown<E: Error, T>(_ type: E.Type = E.self, _ body: () throws(E) -> T) -> E? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
