import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file written whole or not at all: the bytes go to a fresh temporary file beside the target
/// (same directory, so same filesystem), which is synced and then renamed over the target. A
/// reader never sees half a file, a failed fetch leaves the old file as it was, and the file is
/// private (0600: answers are as private as the prompts).
///
/// A symbolic link at the target is refused rather than followed: `batch results -o` run as root
/// in a shared directory must not write wherever someone else's link points. (The rename would
/// replace a link that appeared after the check, never write through it.)
struct OutputFile {
    let path: String
    private let temporary: String
    private let fd: Int32

    init(_ path: String) throws {
        self.path = path
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
            throw CLIError("\(path) is a symbolic link; not writing through it (remove it, or give the file it points to)")
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var generator = SystemRandomNumberGenerator()
        while true {
            let candidate = directory + ".\(name).\(String(generator.next() as UInt32, radix: 16)).tmp"
            // O_EXCL with O_NOFOLLOW: a name someone else made, file or link, is never opened.
            let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                temporary = candidate
                self.fd = fd
                return
            }
            guard errno == EEXIST else { throw Self.failure("cannot create a temporary file beside", path) }
        }
    }

    func write(_ data: Data) throws {
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw Self.failure("cannot write", temporary) }
                offset += n
            }
        }
    }

    /// Syncs the data, renames it over the target and syncs the directory, so that after a crash
    /// the target is either the old file or the whole new one.
    func commit() throws {
        guard fsync(fd) == 0 else { throw Self.failure("cannot sync", temporary) }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = Self.failure("cannot rename the output to", path)
            unlink(temporary)
            throw error
        }
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "."
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// Leaves the target as it was.
    func discard() {
        close(fd)
        unlink(temporary)
    }

    private static func failure(_ what: String, _ path: String) -> CLIError {
        CLIError("\(what) \(path): \(String(cString: strerror(errno)))")
    }
}
