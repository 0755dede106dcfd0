import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp (not $TMPDIR: a socket path has at most 107 bytes, and $TMPDIR may
/// be long), made with mkdtemp: `/tmp/<prefix>.XXXXXX`.
public func makeTemporaryDirectory(_ prefix: String = "lookaheadd-test") throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp /tmp/\(prefix).XXXXXX: \(String(cString: strerror(errno)))") }
    return String(cString: made)
}

/// Removes `path` and everything under it, making directories writable first (tests make them
/// read-only on purpose). Missing paths are fine.
public func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR {
        chmod(path, 0o700)
        if let dir = opendir(path) {
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names { removeTree(path + "/" + name) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// A temporary directory for one test, removed (with everything in it) by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init(_ prefix: String = "lookaheadd-test") throws { path = try makeTemporaryDirectory(prefix) }

    public func sub(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` in the directory; returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let file = sub(name)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    public func remove() { removeTree(path) }
}
