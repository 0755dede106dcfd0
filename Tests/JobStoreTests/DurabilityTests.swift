#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import JobStore
import LookaheadProtocol
import Testing
import TestSupport

private let owner: UInt32 = 1000

/// Runs a job to its end from a reopened store, after a crash left it half done: recovery first,
/// as the daemon does at start, then every line claimed and completed.
private func finishAfterRestart(_ directory: String, jobID: String, expectRequeued: Int) throws -> [LineResult] {
    let store = try JobStore(directory: directory)
    #expect(try store.recoverInFlight(now: t0 + 99) == Recovery(requeued: expectRequeued))
    #expect(try store.recoverInFlight(now: t0 + 99) == Recovery(), "recovery is idempotent")
    while true {
        let claimed = try store.claimLines(limit: 2, now: t0 + 100, windowOpen: false)
        if claimed.isEmpty { break }
        for line in claimed {
            try store.complete(jobID: line.jobID, lineNo: line.lineNo, result: answer("\(line.customID)#\(line.attempt)"), now: t0 + 101)
        }
    }
    #expect(try store.job(id: jobID, requester: owner).state == .completed)
    #expect(try store.counterMismatches() == [])
    return try store.results(id: jobID, requester: owner)
}

/// Lines 1–3 claimed, line 1 answered, lines 4–5 still queued: the state a crash interrupts.
private func halfDoneJob(_ store: JobStore) throws -> String {
    let job = try store.submit(owner: owner, lines: try validLines(5), runNow: true, deadline: nil, now: t0).job
    #expect(try store.claimLines(limit: 3, now: t0 + 1, windowOpen: false).count == 3)
    try store.complete(jobID: job.id, lineNo: 1, result: answer("q1#1"), now: t0 + 2)
    return job.id
}

/// Every line answered once, by the attempt that answered it: line 1 before the crash, 2 and 3
/// redone, 4 and 5 run for the first time.
private func expectEachLineOnce(_ results: [LineResult]) {
    #expect(results.map(\.customID) == ["q1", "q2", "q3", "q4", "q5"])
    #expect(results.allSatisfy { $0.state == .done })
    #expect(results.map(\.attempts) == [1, 2, 2, 1, 1])
    #expect(results.map { $0.result?.objectValue?["text"]?.stringValue } == ["q1#1", "q2#2", "q3#2", "q4#1", "q5#1"])
}

@Suite struct DurabilityTests {
    @Test func droppedStoreLosesNoLineAndDuplicatesNone() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let state = dir.sub("state")
        var store: JobStore? = try JobStore(directory: state)
        let jobID = try halfDoneJob(store!)
        store = nil  // gone without completing its lines in flight
        expectEachLineOnce(try finishAfterRestart(state, jobID: jobID, expectRequeued: 2))
    }

    /// Closer to `kill -9` and a power cut: the files are copied while the store is open, as a
    /// crash leaves them (committed pages partly still in the WAL, no clean close, no -shm).
    @Test func crashImageRecoversEveryCommittedLine() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let live = dir.sub("live")
        let crashed = dir.sub("crashed")
        let store = try JobStore(directory: live)
        let jobID = try halfDoneJob(store)
        let wal = readFile(live + "/jobs.sqlite3-wal")
        #expect((wal?.count ?? 0) > 0, "the commits are still in the WAL")
        mkdir(crashed, 0o700)
        writeFile(crashed + "/jobs.sqlite3", readFile(live + "/jobs.sqlite3")!)
        writeFile(crashed + "/jobs.sqlite3-wal", wal ?? [])
        withExtendedLifetime(store) {}
        expectEachLineOnce(try finishAfterRestart(crashed, jobID: jobID, expectRequeued: 2))
    }

    @Test func recoveryEndsLinesOfJobsThatEndedMeanwhile() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        var store: JobStore? = try JobStore(directory: dir.path)
        let job = try store!.submit(owner: owner, lines: try validLines(3), runNow: true, deadline: nil, now: t0).job
        _ = try store!.claimLines(limit: 2, now: t0, windowOpen: false)
        _ = try store!.cancel(jobID: job.id, requester: owner, now: t0 + 1)
        store = nil
        store = try JobStore(directory: dir.path)
        #expect(try store!.recoverInFlight(now: t0 + 2) == Recovery(), "nothing of a cancelled job is re-queued")
        let results = try store!.results(id: job.id, requester: owner)
        #expect(results.map(\.state) == [.cancelled, .cancelled, .cancelled])
        #expect(results.allSatisfy { $0.finishedAt == t0 + 1 })
        #expect(try store!.counterMismatches() == [])
    }

    /// A line the daemon keeps dying under (simulated: the store dropped with the line in
    /// flight, and reopened) runs three times, then fails with the reason, and its job ends.
    @Test func aLineInFlightAtEveryRestartFailsAfterThreeAttempts() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        var store: JobStore? = try JobStore(directory: dir.path)
        let job = try store!.submit(owner: owner, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
        _ = try store!.claimLines(limit: 1, now: t0, windowOpen: false)
        try store!.complete(jobID: job.id, lineNo: 1, result: answer("fine"), now: t0 + 1)
        for attempt in 1...JobStore.maxAttempts {
            let claimed = try store!.claimLines(limit: 1, now: t0 + Double(attempt), windowOpen: false)
            #expect(claimed.map(\.lineNo) == [2] && claimed.first?.attempt == attempt)
            store = nil
            store = try JobStore(directory: dir.path)
            let recovery = try store!.recoverInFlight(now: t0 + 10 * Double(attempt))
            let last = attempt == JobStore.maxAttempts
            #expect(recovery == (last ? Recovery(abandoned: 1) : Recovery(requeued: 1)), "after attempt \(attempt)")
        }
        let line = try store!.results(id: job.id, requester: owner)[1]
        #expect(line.state == .failed && line.attempts == 3 && line.finishedAt == t0 + 30)
        #expect(line.error == ["code": "internal", "message": "abandoned after 3 attempts: the daemon stopped while it ran"])
        let ended = try store!.job(id: job.id, requester: owner)
        #expect(ended.state == .completed && ended.finishedAt == t0 + 30 && ended.counts.failed == 1)
        #expect(try store!.claimLines(limit: 5, now: t0 + 40, windowOpen: true).isEmpty)
        #expect(try store!.counterMismatches() == [])
    }

    /// A database written by the first schema (no idempotency keys, no byte counts) is upgraded
    /// in place: its jobs keep running, and their bytes count against the quota.
    @Test func aVersion1DatabaseIsUpgraded() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        var store: JobStore? = try JobStore(directory: dir.path)
        let old = try store!.submit(owner: owner, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
        let bytes = Int(try store!.sqlForTesting("SELECT n_bytes FROM jobs")[0])!
        #expect(bytes > 0)
        // Back to version 1, as the first release left it.
        for sql in ["DROP INDEX jobs_by_key", "ALTER TABLE jobs DROP COLUMN idempotency_key",
                    "ALTER TABLE jobs DROP COLUMN n_bytes", "ALTER TABLE jobs DROP COLUMN format", "PRAGMA user_version = 1"] {
            try store!.sqlForTesting(sql)
        }
        store = nil

        store = try JobStore(directory: dir.path)
        #expect(try store!.sqlForTesting("PRAGMA user_version") == ["3"])
        #expect(try store!.job(id: old.id, requester: owner).counts.queued == 2)
        let quota = JobQuota(jobs: 10, lines: 10, bytes: bytes)
        #expect(thrown { () throws(JobStoreError) in
            try store!.submit(owner: owner, lines: try! validLines(1, prefix: "r"), runNow: true, deadline: nil, now: t0 + 1, quota: quota)
        } == .overQuota(owner: owner, limit: .bytes, held: bytes, adding: bytes / 2, max: bytes))
        let keyed = try store!.submit(owner: owner, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 2, idempotencyKey: "k")
        #expect(try store!.submit(owner: owner, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 3, idempotencyKey: "k").job.id
            == keyed.job.id)
    }

    /// A database of the second schema (before job formats) is upgraded in place: its jobs are
    /// native and keep running, and OpenAI jobs can be stored beside them.
    @Test func aVersion2DatabaseIsUpgraded() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        var store: JobStore? = try JobStore(directory: dir.path)
        let old = try store!.submit(owner: owner, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
        for sql in ["ALTER TABLE jobs DROP COLUMN format", "PRAGMA user_version = 2"] { try store!.sqlForTesting(sql) }
        #expect(try store!.sqlForTesting("SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'format'") == ["0"])
        store = nil

        store = try JobStore(directory: dir.path)
        #expect(try store!.sqlForTesting("PRAGMA user_version") == ["3"])
        let upgraded = try store!.job(id: old.id, requester: owner)
        #expect(upgraded.format == .native && upgraded.counts.queued == 2)
        let chat = #"{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}]}}"#
        let openAI = try store!.submit(owner: owner, lines: try JobInput.validate(jsonl: Array(chat.utf8)), runNow: true,
                                       deadline: nil, now: t0 + 1).job
        #expect(openAI.format == .openAI)
        #expect(try store!.claimLines(limit: 3, now: t0 + 2, windowOpen: true).map(\.format) == [.native, .native, .openAI])
        #expect(thrown { () throws(JobStoreError) in try store!.sqlForTesting("UPDATE jobs SET format = 'xml'") } != nil,
                "the column takes only known formats")
    }

    @Test func oneStorePerDirectory() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        var first: JobStore? = try JobStore(directory: dir.path)
        #expect(thrown { () throws(JobStoreError) in try JobStore(directory: dir.path) } == .locked(path: dir.path + "/jobs.lock"))
        #expect(first != nil)
        first = nil
        #expect(thrown { () throws(JobStoreError) in try JobStore(directory: dir.path) } == nil)
    }

    @Test func filesArePrivate() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let state = dir.sub("state")
        let store = try JobStore(directory: state)
        _ = try store.submit(owner: owner, lines: try validLines(1), runNow: true, deadline: nil, now: t0).job
        #expect(mode(state) == 0o700)
        #expect(mode(state + "/jobs.sqlite3") == 0o600)
        #expect(mode(state + "/jobs.sqlite3-wal") == 0o600)
        #expect(mode(state + "/jobs.sqlite3-shm") == 0o600)
        #expect(mode(state + "/jobs.lock") == 0o600)
        #expect(store.path == state + "/jobs.sqlite3")
    }

    @Test func aWiderDatabaseFileIsNarrowed() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        do { _ = try JobStore(directory: dir.path) }
        chmod(dir.path + "/jobs.sqlite3", 0o644)
        _ = try JobStore(directory: dir.path)
        #expect(mode(dir.path + "/jobs.sqlite3") == 0o600)
    }

    @Test func durableSettings() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let store = try JobStore(directory: dir.path)
        #expect(try store.sqlForTesting("PRAGMA journal_mode") == ["wal"])
        #expect(try store.sqlForTesting("PRAGMA synchronous") == ["2"], "FULL")
        #expect(try store.sqlForTesting("PRAGMA foreign_keys") == ["1"])
        #expect(try store.sqlForTesting("PRAGMA busy_timeout") == ["5000"])
        #expect(try store.sqlForTesting("PRAGMA user_version") == ["3"])
    }

    @Test func aNewerSchemaIsRefused() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        do { try JobStore(directory: dir.path).sqlForTesting("PRAGMA user_version = 99") }
        #expect(thrown { () throws(JobStoreError) in try JobStore(directory: dir.path) }
            == .unsupportedSchema(path: dir.path + "/jobs.sqlite3", version: 99))
    }

    @Test func aDirectoryWeMayNotWriteIsAClearError() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        chmod(dir.path, 0o755)  // nobody may enter, not write
        let error = asNobody { thrown { () throws(JobStoreError) in try JobStore(directory: dir.sub("state")) } }
        #expect(error == .cannotOpen(path: dir.sub("state"), detail: "cannot create directory: Permission denied"))
        #expect(error?.description.contains(dir.sub("state")) == true)

        mkdir(dir.sub("ro"), 0o555)
        let inside = asNobody { thrown { () throws(JobStoreError) in try JobStore(directory: dir.sub("ro")) } }
        #expect(inside?.description == "cannot open \(dir.sub("ro"))/jobs.lock: cannot open the lock file: Permission denied")
    }

    @Test func aDatabaseWeMayNotWriteIsReadOnly() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        do { _ = try JobStore(directory: dir.path) }
        // Our own files, but the database only readable: SQLite would quietly open it read-only.
        if geteuid() == 0 {
            chown(dir.path + "/jobs.lock", 65534, 65534)
            chown(dir.path + "/jobs.sqlite3", 65534, 65534)
        }
        chmod(dir.path + "/jobs.sqlite3", 0o400)
        let error = asNobody { thrown { () throws(JobStoreError) in try JobStore(directory: dir.path) } }
        guard case .readOnly(let path, _)? = error else {
            Issue.record("expected readOnly, got \(String(describing: error))")
            return
        }
        #expect(path == dir.path + "/jobs.sqlite3")
    }

    @Test(.enabled(if: geteuid() == 0, "another owner needs root to set up"))
    func aWideFileWeCannotNarrowIsRefused() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        do { _ = try JobStore(directory: dir.path) }
        if geteuid() == 0 { chown(dir.path + "/jobs.lock", 65534, 65534) }
        chmod(dir.path + "/jobs.sqlite3", 0o644)
        let error = asNobody { thrown { () throws(JobStoreError) in try JobStore(directory: dir.path) } }
        #expect(error == .cannotOpen(path: dir.path + "/jobs.sqlite3", detail: "cannot chmod 0600: Operation not permitted"))
    }

    /// SQLite's own read-only refusal (as from a filesystem remounted read-only under a running
    /// daemon) is a readOnly error naming the file, and leaves the store usable once writable.
    @Test func sqliteReadOnlyMapsToReadOnly() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let store = try JobStore(directory: dir.path)
        try store.sqlForTesting("PRAGMA query_only = ON")
        let error = thrown { () throws(JobStoreError) in
            try store.submit(owner: owner, lines: try! validLines(1), runNow: true, deadline: nil, now: t0).job
        }
        guard case .readOnly(let path, _)? = error else {
            Issue.record("expected readOnly, got \(String(describing: error))")
            return
        }
        #expect(path == store.path)
        #expect(error?.description.hasPrefix("\(store.path) is read-only") == true)
        try store.sqlForTesting("PRAGMA query_only = OFF")
        #expect(try store.submit(owner: owner, lines: try validLines(1), runNow: true, deadline: nil, now: t0).job.state == .queued)
    }

    @Test func aFullDiskRefusesTheWholeJobAndTheStoreGoesOn() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let store = try JobStore(directory: dir.path)
        let small = try store.submit(owner: owner, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
        _ = try store.claimLines(limit: 1, now: t0, windowOpen: false)
        let pages = Int(try store.sqlForTesting("PRAGMA page_count")[0])!
        try store.sqlForTesting("PRAGMA max_page_count = \(pages + 2)")

        let big = (1...200).map { #"{"custom_id":"big\#($0)","prompt":"\#(String(repeating: "x", count: 2000))"}"# }
        let lines = try JobInput.validate(jsonl: Array(big.joined(separator: "\n").utf8))
        let error = thrown { () throws(JobStoreError) in try store.submit(owner: owner, lines: lines, runNow: true, deadline: nil, now: t0 + 1).job }
        #expect(error == .diskFull(path: store.path))
        #expect(error?.description == "disk full: cannot write \(store.path)")

        // All or nothing: no trace of the refused job; the existing one carries on.
        #expect(try store.list(requester: 0).map(\.id) == [small.id])
        #expect(try store.counterMismatches() == [])
        try store.complete(jobID: small.id, lineNo: 1, result: answer("fine"), now: t0 + 2)
        try store.sqlForTesting("PRAGMA max_page_count = 1073741823")
        #expect(try store.submit(owner: owner, lines: lines, runNow: true, deadline: nil, now: t0 + 3).job.counts.total == 200)
    }

    @Test(arguments: [
        (SQLITE_FULL, "diskFull"), (SQLITE_READONLY, "readOnly"), (SQLITE_READONLY | (1 << 8), "readOnly"),
        (SQLITE_IOERR, "ioError"), (SQLITE_IOERR | (4 << 8), "ioError"), (SQLITE_CANTOPEN, "cannotOpen"),
        (SQLITE_CORRUPT, "corrupt"), (SQLITE_NOTADB, "corrupt"), (SQLITE_CONSTRAINT, "sqlite"),
    ])
    func sqliteCodesMapToDistinctCases(_ code: Int32, _ name: String) {
        let error = JobStoreError(sqliteCode: code, path: "/var/lib/lookaheadd/jobs.sqlite3", detail: "d")
        #expect(Mirror(reflecting: error).children.first?.label == name, "\(error)")
        #expect(error.description.contains("/var/lib/lookaheadd/jobs.sqlite3"))
    }
}
