import CSQLite

/// Why a store operation failed. The storage cases name the file, so an operator reading the
/// journal knows which disk is full or which mount went read-only; the rest are the caller's
/// mistakes and name the job.
public enum JobStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No such job, or one the requester may not see: the two are not told apart, so probing ids
    /// reveals nothing about other users' jobs.
    case notFound(jobID: String)
    /// The job is already completed, failed, cancelled or expired.
    case alreadyFinished(jobID: String, state: JobState)
    /// `complete`, `fail` or `release` of a line that is not in progress (nil: no such line).
    /// Refusing these is what keeps a line from being answered twice.
    case lineNotInProgress(jobID: String, lineNo: Int, state: LineState?)
    /// A submission the store will not take: no lines, a custom id twice, a deadline already past.
    case invalidSubmission(String)
    /// The submission would take its owner over a quota: `held` is what the owner has now,
    /// `adding` what the job would add, `max` the limit.
    case overQuota(owner: UInt32, limit: QuotaLimit, held: Int, adding: Int, max: Int)
    /// Another process (or another `JobStore` in this one) has the store open.
    case locked(path: String)
    /// The database was written by a newer lookaheadd.
    case unsupportedSchema(path: String, version: Int)

    case diskFull(path: String)
    case readOnly(path: String, detail: String)
    case ioError(path: String, detail: String)
    case cannotOpen(path: String, detail: String)
    case corrupt(path: String, detail: String)
    /// Any other SQLite failure: a bug here rather than trouble with the disk.
    case sqlite(path: String, code: Int32, detail: String)

    public var description: String {
        switch self {
        case .notFound(let id):
            return "job \(id) not found"
        case .alreadyFinished(let id, let state):
            return "job \(id) is already \(state.rawValue)"
        case .lineNotInProgress(let id, let lineNo, nil):
            return "job \(id) has no line \(lineNo)"
        case .lineNotInProgress(let id, let lineNo, let state?):
            return "line \(lineNo) of job \(id) is \(state.rawValue), not in_progress"
        case .invalidSubmission(let message):
            return message
        case .overQuota(let owner, let limit, let held, let adding, let max):
            return "uid \(owner) has \(held) \(limit.counted) and this job adds \(adding): over \(limit.rawValue) (\(max))"
        case .locked(let path):
            return "\(path) is locked: another lookaheadd is using this job store"
        case .unsupportedSchema(let path, let version):
            return "\(path) has schema version \(version); this lookaheadd knows versions up to \(Schema.version)"
        case .diskFull(let path):
            return "disk full: cannot write \(path)"
        case .readOnly(let path, let detail):
            return "\(path) is read-only: \(detail)"
        case .ioError(let path, let detail):
            return "I/O error on \(path): \(detail)"
        case .cannotOpen(let path, let detail):
            return "cannot open \(path): \(detail)"
        case .corrupt(let path, let detail):
            return "\(path) is corrupt: \(detail)"
        case .sqlite(let path, let code, let detail):
            return "SQLite error \(code) on \(path): \(detail)"
        }
    }

    /// Sorted by SQLite's primary code; the extended code stays in the detail through sqlite3_errmsg.
    package init(sqliteCode code: Int32, path: String, detail: String) {
        switch code & 0xff {
        case SQLITE_FULL: self = .diskFull(path: path)
        case SQLITE_READONLY: self = .readOnly(path: path, detail: detail)
        case SQLITE_IOERR: self = .ioError(path: path, detail: detail)
        case SQLITE_CANTOPEN: self = .cannotOpen(path: path, detail: detail)
        case SQLITE_CORRUPT, SQLITE_NOTADB: self = .corrupt(path: path, detail: detail)
        default: self = .sqlite(path: path, code: code, detail: detail)
        }
    }
}
