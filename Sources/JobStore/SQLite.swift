import CSQLite

/// The C macro `SQLITE_TRANSIENT` (a cast of -1) does not import: SQLite copies the bound bytes,
/// which it must, since Swift's buffers only live for the call.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A value bound to a statement parameter.
enum SQLValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)

    static func optional(_ value: Double?) -> SQLValue { value.map { .double($0) } ?? .null }
    static func optional(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
}

/// One result row, valid only inside the closure it is passed to (SQLite reuses its buffers on
/// the next step).
struct Row {
    fileprivate let statement: OpaquePointer

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }
    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
    func double(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
    func optionalDouble(_ column: Int32) -> Double? { isNull(column) ? nil : double(column) }

    /// Read with its byte count, so text holding U+0000 comes back whole.
    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }
}

/// A connection and its prepared statements. Every failure becomes a `JobStoreError` naming the
/// database file, so a full disk or a read-only mount reads as such in the daemon's log.
/// Owned by exactly one `JobStore`, which serialises all use.
final class Connection {
    let path: String
    private let db: OpaquePointer
    /// Prepared once per SQL text: the store runs the same dozen statements over and over.
    private var statements: [String: OpaquePointer] = [:]
    private var closed = false
    /// Rows stepped through by `query`, ever: lets tests prove that a page reads what it returns
    /// and not the whole job, which no timing could show reliably.
    private(set) var rowsRead = 0

    init(path: String) throws(JobStoreError) {
        self.path = path
        var handle: OpaquePointer?
        // NOMUTEX: one owner serialises every call, so SQLite's own per-call locking would be waste.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(handle)
            throw JobStoreError(sqliteCode: rc, path: path, detail: detail)
        }
        db = handle
        // SQLite quietly opens a file it may not write read-only; a job queue that cannot record
        // results must refuse to start instead.
        if sqlite3_db_readonly(db, "main") == 1 {
            sqlite3_close_v2(db)
            throw .readOnly(path: path, detail: "the file or its directory is not writable")
        }
    }

    deinit { close() }

    /// Idempotent, so the owner can close before releasing what guards the file.
    func close() {
        guard !closed else { return }
        closed = true
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_close_v2(db)
    }

    /// Runs a statement that returns no rows of interest; returns the number of rows changed.
    @discardableResult
    func execute(_ sql: String, _ values: [SQLValue] = []) throws(JobStoreError) -> Int {
        let statement = try prepared(sql, values)
        defer { sqlite3_reset(statement) }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure(rc) }
        }
        return Int(sqlite3_changes64(db))
    }

    /// Runs a query and maps each row.
    func query<T>(
        _ sql: String, _ values: [SQLValue] = [], _ map: (Row) throws(JobStoreError) -> T
    ) throws(JobStoreError) -> [T] {
        let statement = try prepared(sql, values)
        defer { sqlite3_reset(statement) }
        var rows: [T] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return rows }
            guard rc == SQLITE_ROW else { throw failure(rc) }
            rowsRead += 1
            rows.append(try map(Row(statement: statement)))
        }
    }

    func queryOne<T>(
        _ sql: String, _ values: [SQLValue] = [], _ map: (Row) throws(JobStoreError) -> T
    ) throws(JobStoreError) -> T? {
        try query(sql, values, map).first
    }

    /// A multi-statement script (schema, pragmas); nothing bound.
    func script(_ sql: String) throws(JobStoreError) {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw failure(rc) }
    }

    /// One write transaction. IMMEDIATE takes the write lock at BEGIN, so a transaction never
    /// fails half-way for want of it. On any error the transaction is rolled back: the store is
    /// usable again at once (after SQLITE_FULL, say) and nothing half-done is ever committed.
    func transaction<T>(_ body: () throws(JobStoreError) -> T) throws(JobStoreError) -> T {
        try inTransaction("BEGIN IMMEDIATE", body)
    }

    /// Several reads that must see one snapshot (a job and its lines).
    func readTransaction<T>(_ body: () throws(JobStoreError) -> T) throws(JobStoreError) -> T {
        try inTransaction("BEGIN", body)
    }

    private func inTransaction<T>(_ begin: String, _ body: () throws(JobStoreError) -> T) throws(JobStoreError) -> T {
        try execute(begin)
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            // SQLite has already rolled back after some errors (a failed COMMIT on a full disk, for one).
            if sqlite3_get_autocommit(db) == 0 { _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil) }
            throw error
        }
    }

    private func prepared(_ sql: String, _ values: [SQLValue]) throws(JobStoreError) -> OpaquePointer {
        let statement: OpaquePointer
        if let cached = statements[sql] {
            statement = cached
        } else {
            var handle: OpaquePointer?
            let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
            guard rc == SQLITE_OK, let handle else { throw failure(rc) }
            statements[sql] = handle
            statement = handle
        }
        sqlite3_clear_bindings(statement)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .int(let i): rc = sqlite3_bind_int64(statement, index, i)
            case .double(let d): rc = sqlite3_bind_double(statement, index, d)
            case .text(let s) where s.isEmpty:
                // A nil pointer would bind NULL, not "".
                rc = sqlite3_bind_text(statement, index, "", 0, transient)
            case .text(var s):
                // With the length given, text holding U+0000 is stored whole.
                rc = s.withUTF8 { utf8 in
                    utf8.withMemoryRebound(to: CChar.self) {
                        sqlite3_bind_text64(statement, index, $0.baseAddress, UInt64($0.count), transient, UInt8(SQLITE_UTF8))
                    }
                }
            }
            guard rc == SQLITE_OK else { throw failure(rc) }
        }
        return statement
    }

    private func failure(_ rc: Int32) -> JobStoreError {
        JobStoreError(sqliteCode: rc, path: path, detail: String(cString: sqlite3_errmsg(db)))
    }
}
