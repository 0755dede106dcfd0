// The sqlite3 C API directly, not GRDB: the store needs a dozen statements, and GRDB would add
// about 4.5 minutes to a clean build on two cores and set synchronous=NORMAL
// behind our back.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LookaheadProtocol

/// The persistent queue of batch jobs: `jobs.sqlite3` in the daemon's state directory.
///
/// Every operation is one transaction, committed with `synchronous=FULL` before it returns, so
/// what a caller reports to a client has already survived a crash or a power loss. A line's
/// result is committed before anyone is told, and a line is handed out again only by
/// `recoverInFlight` (after a restart) or `release`, so a `kill -9` loses at most the lines in
/// flight and never answers one twice.
///
/// Not thread-safe, on purpose: one owner — the daemon's job actor — makes every call, so SQLite's
/// own locking is switched off and there is nothing else to lock. The store also takes an
/// exclusive `flock` on `jobs.lock` for its lifetime: a second daemon on the same directory
/// would re-queue the first one's lines in flight and answer them twice.
///
/// Times are unix seconds passed in by the caller, so tests (and a daemon with a mocked clock)
/// decide what "now" is.
public final class JobStore {
    /// The database file; every storage error names it.
    public let path: String
    private let connection: Connection
    private let lockFD: Int32

    /// Opens the store in `directory`, creating the directory (mode 0700) and the database
    /// (mode 0600: prompts and answers are private to their owners) when missing.
    public init(directory: String) throws(JobStoreError) {
        path = directory + "/jobs.sqlite3"
        try Files.makeDirectory(directory)
        let lockFD = try Files.lock(directory + "/jobs.lock")
        do {
            try Files.createPrivate(path, syncing: directory)
            let connection = try Connection(path: path)
            try Self.configure(connection)
            try Self.migrate(connection)
            self.connection = connection
            self.lockFD = lockFD
        } catch {
            close(lockFD)
            throw error
        }
    }

    deinit {
        // The database closes first, then the lock lets the next owner in.
        connection.close()
        close(lockFD)
    }

    // MARK: - Submitting

    /// Stores a job and all its lines, or nothing. `deadline` (unix seconds) is when unstarted
    /// lines stop being run; `runNow` lets the job run outside the drain window. A job the same
    /// owner already submitted with the same `idempotencyKey` is returned instead of a new one
    /// (the lines are not compared: the key says what the job is). `quota` caps what the owner may
    /// have unfinished, this job included.
    public func submit(
        owner: UInt32, lines: [ValidatedLine], runNow: Bool, deadline: Double?, now: Double,
        idempotencyKey: String? = nil, quota: JobQuota? = nil
    ) throws(JobStoreError) -> SubmittedJob {
        guard let format = lines.first?.format else { throw .invalidSubmission("a job needs at least one line") }
        // Lines validated in separate calls could still clash.
        var seen = Set<String>()
        for line in lines where !seen.insert(line.customID).inserted {
            throw .invalidSubmission("duplicate custom_id '\(line.customID)'")
        }
        if let other = lines.first(where: { $0.format != format }) {
            throw .invalidSubmission("the lines mix formats (\(format.rawValue) and \(other.format.rawValue)): a job is one format")
        }
        let requests = lines.map { Self.text(.object($0.request)) }
        let bytes = zip(lines, requests).reduce(0) { $0 + $1.0.customID.utf8.count + $1.1.utf8.count }
        return try connection.transaction { () throws(JobStoreError) in
            if let idempotencyKey, let id = try connection.queryOne(
                "SELECT id FROM jobs WHERE owner_uid = ? AND idempotency_key = ?",
                [.int(Int64(owner)), .text(idempotencyKey)], { row in row.text(0) }) {
                return SubmittedJob(job: try record(id), duplicate: true)
            }
            if let deadline, !(deadline > now) {
                throw .invalidSubmission("the deadline \(deadline) is not after the submission time \(now)")
            }
            if let quota { try check(quota, owner: owner, lines: lines.count, bytes: bytes) }
            let id = try freshJobID()
            // Inserted as validating and queued only once every line is in: were a large job ever
            // stored in several transactions, no part of it could be claimed early.
            try connection.execute(
                """
                INSERT INTO jobs (id, owner_uid, state, created_at, deadline, run_now, n_total, n_bytes, idempotency_key, format)
                VALUES (?, ?, 'validating', ?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(id), .int(Int64(owner)), .double(now), .optional(deadline), .int(runNow ? 1 : 0),
                 .int(Int64(lines.count)), .int(Int64(bytes)), .optional(idempotencyKey), .text(format.rawValue)])
            for (index, (line, request)) in zip(lines, requests).enumerated() {
                try connection.execute(
                    "INSERT INTO lines (job_id, line_no, custom_id, request, state) VALUES (?, ?, ?, ?, 'queued')",
                    [.text(id), .int(Int64(index + 1)), .text(line.customID), .text(request)])
            }
            try connection.execute("UPDATE jobs SET state = 'queued', n_queued = n_total WHERE id = ?", [.text(id)])
            return SubmittedJob(job: try record(id), duplicate: false)
        }
    }

    /// Refuses a job of `lines` lines and `bytes` bytes that would take its owner over `quota`.
    private func check(_ quota: JobQuota, owner: UInt32, lines: Int, bytes: Int) throws(JobStoreError) {
        let held = try connection.queryOne(
            """
            SELECT count(*), coalesce(sum(n_queued + n_in_progress), 0), coalesce(sum(n_bytes), 0)
            FROM jobs WHERE owner_uid = ? AND state NOT IN (\(Self.finalStates))
            """,
            [.int(Int64(owner))]
        ) { row in (jobs: Int(row.int(0)), lines: Int(row.int(1)), bytes: Int(row.int(2))) } ?? (jobs: 0, lines: 0, bytes: 0)
        let checks: [(QuotaLimit, held: Int, adding: Int, max: Int)] = [
            (.jobs, held.jobs, 1, quota.jobs), (.lines, held.lines, lines, quota.lines), (.bytes, held.bytes, bytes, quota.bytes),
        ]
        for (limit, held, adding, max) in checks where held + adding > max {
            throw .overQuota(owner: owner, limit: limit, held: held, adding: adding, max: max)
        }
    }

    // MARK: - Running

    /// Hands out up to `limit` queued lines, oldest job first and in line order, from jobs that
    /// may run now: those submitted with `runNow`, and all of them while the drain window is
    /// open. Jobs past their deadline are expired first, window or not, so their lines are never
    /// handed out. The lines are in_progress until `complete`, `fail` or `release`.
    public func claimLines(limit: Int, now: Double, windowOpen: Bool) throws(JobStoreError) -> [ClaimedLine] {
        try connection.transaction { () throws(JobStoreError) in
            _ = try expireOverdue(now)
            guard limit > 0 else { return [] }
            let jobs = try connection.query(
                """
                SELECT id, owner_uid, format FROM jobs
                WHERE state IN ('queued', 'in_progress') AND n_queued > 0 AND (run_now = 1 OR ?)
                ORDER BY created_at, rowid
                """,
                [.int(windowOpen ? 1 : 0)]
            ) { row throws(JobStoreError) in
                (id: row.text(0), owner: UInt32(truncatingIfNeeded: row.int(1)), format: try jobFormat(row.text(2)))
            }

            var claimed: [ClaimedLine] = []
            for job in jobs where claimed.count < limit {
                let lines = try connection.query(
                    """
                    SELECT line_no, custom_id, request, attempts FROM lines
                    WHERE job_id = ? AND state = 'queued' ORDER BY line_no LIMIT ?
                    """,
                    [.text(job.id), .int(Int64(limit - claimed.count))]
                ) { row throws(JobStoreError) in
                    ClaimedLine(
                        jobID: job.id, lineNo: Int(row.int(0)), customID: row.text(1), owner: job.owner, format: job.format,
                        request: try object(row.text(2), what: "the request of line \(row.int(0)) of job \(job.id)"),
                        attempt: Int(row.int(3)) + 1)
                }
                guard let last = lines.last else { continue }
                // The first k queued lines in order are exactly the queued lines up to the k-th.
                try connection.execute(
                    """
                    UPDATE lines SET state = 'in_progress', attempts = attempts + 1
                    WHERE job_id = ? AND state = 'queued' AND line_no <= ?
                    """,
                    [.text(job.id), .int(Int64(last.lineNo))])
                try move(job.id, lines.count, from: .queued, to: .inProgress)
                try connection.execute(
                    "UPDATE jobs SET state = 'in_progress', started_at = coalesce(started_at, ?) WHERE id = ?",
                    [.double(now), .text(job.id)])
                claimed += lines
            }
            return claimed
        }
    }

    /// Records a line's answer. Only a line in flight can be completed: a second completion, or
    /// one after a restart re-queued the line, is refused, which is what keeps results unique.
    /// The last line to finish finishes the job. Lines still in flight when their job was
    /// cancelled or expired may complete too: their answers are kept, the job's state stays.
    @discardableResult
    public func complete(jobID: String, lineNo: Int, result: JSONValue, now: Double) throws(JobStoreError) -> JobRecord {
        try finish(jobID, lineNo, as: .done, result: result, error: nil, now: now)
    }

    /// Records a line's failure (`error` is an error object as in docs/protocol.md). A job whose
    /// every line failed ends `failed`; one with at least one answer ends `completed`, its
    /// failures listed in its results — a batch is judged by its lines, as in OpenAI's Batch API,
    /// but a job that produced nothing at all says so in its state.
    @discardableResult
    public func fail(jobID: String, lineNo: Int, error: JSONValue, now: Double) throws(JobStoreError) -> JobRecord {
        try finish(jobID, lineNo, as: .failed, result: nil, error: error, now: now)
    }

    /// Takes a line out of flight without an answer: the daemon stopped it (shutting down,
    /// cancelled, preempted). It goes back to the queue if its job still runs, or becomes
    /// cancelled or expired with its job. Its attempt stays counted.
    @discardableResult
    public func release(jobID: String, lineNo: Int, now: Double) throws(JobStoreError) -> JobRecord {
        try connection.transaction { () throws(JobStoreError) in
            let state = try lineState(jobID, lineNo)
            guard state == .inProgress else { throw .lineNotInProgress(jobID: jobID, lineNo: lineNo, state: state) }
            let job = try record(jobID)
            try settleStranded(jobID, count: 1, jobState: job.state, onlyLine: lineNo, now: now)
            return try record(jobID)
        }
    }

    /// Runs a line may have started when a restart finds it in flight once more: a line that
    /// brings the daemon down (a prompt that crashes the engine or exhausts memory) would
    /// otherwise take it down again after every restart, forever.
    public static let maxAttempts = 3

    /// At daemon start, before anything is claimed: every line left in flight by the last run
    /// goes back to the queue (or ends with its job, if that was cancelled or expired meanwhile),
    /// unless it has had `maxAttempts` runs: then it fails. Results are committed before they are
    /// reported, so a line found in flight was never answered and redoing it duplicates nothing.
    @discardableResult
    public func recoverInFlight(now: Double) throws(JobStoreError) -> Recovery {
        try connection.transaction { () throws(JobStoreError) in
            // A scan of every line, once per start: it trusts the lines, not the counters.
            let stranded = try connection.query(
                """
                SELECT l.job_id, j.state, count(*) FROM lines l JOIN jobs j ON j.id = l.job_id
                WHERE l.state = 'in_progress' GROUP BY l.job_id
                """
            ) { row throws(JobStoreError) in (id: row.text(0), state: try jobState(row.text(1)), count: Int(row.int(2))) }
            var recovery = Recovery()
            for job in stranded {
                var left = job.count
                if !job.state.isFinal {
                    let abandoned = try connection.execute(
                        """
                        UPDATE lines SET state = 'failed', error = ?, finished_at = ?
                        WHERE job_id = ? AND state = 'in_progress' AND attempts >= ?
                        """,
                        [.text(Self.text(Self.abandonedError)), .double(now), .text(job.id), .int(Int64(Self.maxAttempts))])
                    try move(job.id, abandoned, from: .inProgress, to: .failed)
                    left -= abandoned
                    recovery.abandoned += abandoned
                    recovery.requeued += left
                }
                try settleStranded(job.id, count: left, jobState: job.state, onlyLine: nil, now: nil)
                // Its last lines may have been the ones abandoned.
                try endIfDone(job.id, now: now)
            }
            return recovery
        }
    }

    /// Expires every job past its deadline; `claimLines` does this too. Lines already in flight
    /// may still finish. Returns how many jobs expired.
    @discardableResult
    public func expireOverdue(now: Double) throws(JobStoreError) -> Int {
        try connection.transaction { () throws(JobStoreError) in try expireOverdue(now) }
    }

    /// Deletes the jobs that ended before `cutoff` (unix seconds), with their lines and results.
    /// A job with a line still in flight (cancelled or expired while it ran) stays until the
    /// line has ended. Returns how many jobs were deleted.
    @discardableResult
    public func deleteFinished(before cutoff: Double) throws(JobStoreError) -> Int {
        try connection.transaction { () throws(JobStoreError) in
            // The lines go with their job (ON DELETE CASCADE).
            try connection.execute(
                """
                DELETE FROM jobs WHERE state IN (\(Self.finalStates)) AND finished_at < ? AND n_in_progress = 0
                """,
                [.double(cutoff)])
        }
    }

    // MARK: - Owners' operations

    /// Cancels a job: its queued lines become cancelled at once. Lines in flight are the
    /// daemon's to let finish (their answers are kept) or to stop and `release`. Only the owner
    /// or root may cancel; anyone else is told the job does not exist.
    public func cancel(jobID: String, requester: UInt32, now: Double) throws(JobStoreError) -> JobRecord {
        try connection.transaction { () throws(JobStoreError) in
            let job = try visibleRecord(jobID, requester)
            guard !job.state.isFinal else { throw .alreadyFinished(jobID: jobID, state: job.state) }
            let cancelled = try connection.execute(
                "UPDATE lines SET state = 'cancelled', error = ?, finished_at = ? WHERE job_id = ? AND state = 'queued'",
                [.text(Self.text(Self.cancelledError)), .double(now), .text(jobID)])
            try move(jobID, cancelled, from: .queued, to: .cancelled)
            try connection.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ?", [.double(now), .text(jobID)])
            return try record(jobID)
        }
    }

    /// The job, if the requester is its owner or root; `.notFound` otherwise.
    public func job(id: String, requester: UInt32) throws(JobStoreError) -> JobRecord {
        try visibleRecord(id, requester)
    }

    /// The requester's jobs, newest first, from just after `after` on, at most `limit` of them;
    /// root sees everyone's. The cursor is a position, not a job, so a page goes on where the
    /// last one ended even if that job has been deleted since.
    public func list(requester: UInt32, after: JobCursor? = nil, limit: Int = .max) throws(JobStoreError) -> [JobRecord] {
        try connection.query(
            """
            SELECT \(Self.jobColumns) FROM jobs
            WHERE (owner_uid = ? OR ? = 0) AND (? IS NULL OR (created_at, id) < (?, ?))
            ORDER BY created_at DESC, id DESC LIMIT ?
            """,
            [.int(Int64(requester)), .int(Int64(requester)), .optional(after?.id), .optional(after?.createdAt),
             .optional(after?.id), .int(Int64(limit))]
        ) { row throws(JobStoreError) in try jobRecord(row) }
    }

    /// The job's lines after line `after`, in line order, at most `limit` of them, each with its
    /// answer or error once it has one. A page reads only its own rows (the primary key is
    /// (job_id, line_no)), so paging through a job of n lines costs O(n) in all, not O(n²).
    public func results(id: String, requester: UInt32, after: Int = 0, limit: Int = .max) throws(JobStoreError) -> [LineResult] {
        try connection.readTransaction { () throws(JobStoreError) in
            _ = try visibleRecord(id, requester)
            return try connection.query(
                """
                SELECT line_no, custom_id, state, result, error, attempts, finished_at FROM lines
                WHERE job_id = ? AND line_no > ? ORDER BY line_no LIMIT ?
                """,
                [.text(id), .int(Int64(after)), .int(Int64(limit))]
            ) { row throws(JobStoreError) in
                let lineNo = Int(row.int(0))
                let what = "line \(lineNo) of job \(id)"
                return LineResult(
                    lineNo: lineNo, customID: row.text(1), state: try lineState(row.text(2)),
                    result: try row.optionalText(3).map { (text) throws(JobStoreError) in try value(text, what: what) },
                    error: try row.optionalText(4).map { (text) throws(JobStoreError) in try value(text, what: what) },
                    attempts: Int(row.int(5)), finishedAt: row.optionalDouble(6))
            }
        }
    }

    /// Batch work waiting or running, for `status`. Lines still in flight for a job that was
    /// cancelled or expired count as in progress: the engine is busy with them.
    public func pendingCounts() throws(JobStoreError) -> PendingCounts {
        try connection.queryOne(
            """
            SELECT coalesce(sum(state = 'queued'), 0), coalesce(sum(state = 'in_progress'), 0),
                   coalesce(sum(n_queued), 0), coalesce(sum(n_in_progress), 0)
            FROM jobs WHERE state IN ('queued', 'in_progress') OR n_in_progress > 0
            """
        ) { row in
            var counts = PendingCounts()
            counts.queuedJobs = Int(row.int(0))
            counts.inProgressJobs = Int(row.int(1))
            counts.queuedLines = Int(row.int(2))
            counts.inProgressLines = Int(row.int(3))
            return counts
        } ?? PendingCounts()
    }

    // MARK: - For tests in this package

    /// Runs one statement on the store's own connection and returns its first column: tests use
    /// it to read pragmas and to make SQLite fail on purpose (`query_only`, `max_page_count`).
    @discardableResult
    package func sqlForTesting(_ sql: String) throws(JobStoreError) -> [String] {
        try connection.query(sql) { row in row.text(0) }
    }

    /// Rows the store's queries have read since it opened.
    package var rowsReadForTesting: Int { connection.rowsRead }

    /// Where the per-job counters disagree with the lines they count; empty when all is well.
    package func counterMismatches() throws(JobStoreError) -> [String] {
        try connection.query(
            """
            SELECT j.id FROM jobs j LEFT JOIN (
                SELECT job_id, count(*) AS total,
                       sum(state = 'queued') AS queued, sum(state = 'in_progress') AS in_progress,
                       sum(state = 'done') AS done, sum(state = 'failed') AS failed,
                       sum(state = 'cancelled') AS cancelled, sum(state = 'expired') AS expired
                FROM lines GROUP BY job_id
            ) l ON l.job_id = j.id
            WHERE (j.n_total, j.n_queued, j.n_in_progress, j.n_done, j.n_failed, j.n_cancelled, j.n_expired)
               IS NOT (l.total, l.queued, l.in_progress, l.done, l.failed, l.cancelled, l.expired)
            """
        ) { row in row.text(0) }
    }

    // MARK: - Inside transactions

    private static let jobColumns = """
        id, owner_uid, state, created_at, started_at, finished_at, deadline, run_now,
        n_total, n_queued, n_in_progress, n_done, n_failed, n_cancelled, n_expired, error, idempotency_key, format
        """

    /// `'completed', 'failed', …` for SQL, from `JobState.isFinal`.
    private static let finalStates = JobState.allCases.filter(\.isFinal).map { "'\($0.rawValue)'" }.joined(separator: ", ")

    private func record(_ id: String) throws(JobStoreError) -> JobRecord {
        guard let job = try connection.queryOne("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.text(id)], { row throws(JobStoreError) in try jobRecord(row) })
        else { throw .notFound(jobID: id) }
        return job
    }

    /// Another user's job is reported exactly like a missing one.
    private func visibleRecord(_ id: String, _ requester: UInt32) throws(JobStoreError) -> JobRecord {
        let job = try record(id)
        guard requester == 0 || job.owner == requester else { throw .notFound(jobID: id) }
        return job
    }

    private func jobRecord(_ row: Row) throws(JobStoreError) -> JobRecord {
        var counts = LineCounts()
        counts.total = Int(row.int(8))
        counts.queued = Int(row.int(9))
        counts.inProgress = Int(row.int(10))
        counts.done = Int(row.int(11))
        counts.failed = Int(row.int(12))
        counts.cancelled = Int(row.int(13))
        counts.expired = Int(row.int(14))
        return JobRecord(
            id: row.text(0), owner: UInt32(truncatingIfNeeded: row.int(1)), state: try jobState(row.text(2)),
            createdAt: row.double(3), startedAt: row.optionalDouble(4), finishedAt: row.optionalDouble(5),
            deadline: row.optionalDouble(6), runNow: row.int(7) != 0, counts: counts, error: row.optionalText(15),
            idempotencyKey: row.optionalText(16), format: try jobFormat(row.text(17)))
    }

    private func finish(
        _ jobID: String, _ lineNo: Int, as state: LineState, result: JSONValue?, error: JSONValue?, now: Double
    ) throws(JobStoreError) -> JobRecord {
        try connection.transaction { () throws(JobStoreError) in
            let changed = try connection.execute(
                """
                UPDATE lines SET state = ?, result = ?, error = ?, finished_at = ?
                WHERE job_id = ? AND line_no = ? AND state = 'in_progress'
                """,
                [.text(state.rawValue), .optional(result.map(Self.text)), .optional(error.map(Self.text)), .double(now),
                 .text(jobID), .int(Int64(lineNo))])
            guard changed == 1 else {
                throw .lineNotInProgress(jobID: jobID, lineNo: lineNo, state: try lineState(jobID, lineNo))
            }
            try move(jobID, 1, from: .inProgress, to: state)
            try endIfDone(jobID, now: now)
            return try record(jobID)
        }
    }

    /// A running job whose every line has ended is over. Only a running job: a cancelled or
    /// expired one keeps its state.
    private func endIfDone(_ jobID: String, now: Double) throws(JobStoreError) {
        try connection.execute(
            """
            UPDATE jobs SET finished_at = ?,
                state = CASE WHEN n_done = 0 THEN 'failed' ELSE 'completed' END,
                error = CASE WHEN n_done = 0 THEN 'every line failed' END
            WHERE id = ? AND state = 'in_progress' AND n_queued = 0 AND n_in_progress = 0
            """,
            [.double(now), .text(jobID)])
    }

    /// Lines of one job left in flight (all of them, or just `onlyLine`): back to the queue while
    /// the job is live, else ended the way the job ended.
    private func settleStranded(
        _ jobID: String, count: Int, jobState: JobState, onlyLine: Int?, now: Double?
    ) throws(JobStoreError) {
        let target: LineState
        let error: JSONValue?
        switch jobState {
        case .expired: (target, error) = (.expired, Self.expiredError)
        case .cancelled: (target, error) = (.cancelled, Self.cancelledError)
        // A completed or failed job has no line in flight; re-queueing is the safe reading anyway.
        default: (target, error) = (.queued, nil)
        }
        let line: SQLValue = onlyLine.map { .int(Int64($0)) } ?? .null
        // Without a time of its own (at recovery), a line ends when its job ended.
        let finishedAt = target == .queued
            ? "NULL" : "coalesce(?, (SELECT finished_at FROM jobs WHERE jobs.id = lines.job_id))"
        let changed = try connection.execute(
            """
            UPDATE lines SET state = ?, error = ?, finished_at = \(finishedAt)
            WHERE job_id = ? AND state = 'in_progress' AND (? IS NULL OR line_no = ?)
            """,
            [.text(target.rawValue), .optional(error.map(Self.text))] + (target == .queued ? [] : [.optional(now)])
                + [.text(jobID), line, line])
        precondition(changed == count, "lines in flight changed under the store's only owner")
        try move(jobID, changed, from: .inProgress, to: target)
    }

    private func expireOverdue(_ now: Double) throws(JobStoreError) -> Int {
        let overdue = try connection.query(
            """
            SELECT id FROM jobs
            WHERE state IN ('queued', 'in_progress') AND deadline IS NOT NULL AND deadline <= ?
            """,
            [.double(now)]
        ) { row in row.text(0) }
        for id in overdue {
            let expired = try connection.execute(
                "UPDATE lines SET state = 'expired', error = ?, finished_at = ? WHERE job_id = ? AND state = 'queued'",
                [.text(Self.text(Self.expiredError)), .double(now), .text(id)])
            try move(id, expired, from: .queued, to: .expired)
            try connection.execute(
                "UPDATE jobs SET state = 'expired', finished_at = ?, error = ? WHERE id = ?",
                [.double(now), .text("the deadline passed with \(expired) lines not yet run"), .text(id)])
        }
        return overdue.count
    }

    /// Keeps a job's per-state counters in step with a change of `count` lines.
    private func move(_ jobID: String, _ count: Int, from: LineState, to: LineState) throws(JobStoreError) {
        guard count > 0, from != to else { return }
        try connection.execute(
            "UPDATE jobs SET \(Self.counter(from)) = \(Self.counter(from)) - ?, \(Self.counter(to)) = \(Self.counter(to)) + ? WHERE id = ?",
            [.int(Int64(count)), .int(Int64(count)), .text(jobID)])
    }

    private static func counter(_ state: LineState) -> String {
        switch state {
        case .queued: return "n_queued"
        case .inProgress: return "n_in_progress"
        case .done: return "n_done"
        case .failed: return "n_failed"
        case .cancelled: return "n_cancelled"
        case .expired: return "n_expired"
        }
    }

    /// nil when the job has no such line.
    private func lineState(_ jobID: String, _ lineNo: Int) throws(JobStoreError) -> LineState? {
        try connection.queryOne(
            "SELECT state FROM lines WHERE job_id = ? AND line_no = ?", [.text(jobID), .int(Int64(lineNo))]
        ) { row throws(JobStoreError) in try lineState(row.text(0)) }
    }

    /// 64 random bits: a collision is all but impossible, but checking costs one lookup.
    private func freshJobID() throws(JobStoreError) -> String {
        var generator = SystemRandomNumberGenerator()
        while true {
            let hex = String(generator.next() as UInt64, radix: 16)
            let id = "job_" + String(repeating: "0", count: 16 - hex.count) + hex
            let taken = try connection.queryOne("SELECT 1 FROM jobs WHERE id = ?", [.text(id)]) { _ in true } ?? false
            if !taken { return id }
        }
    }

    // MARK: - Stored values

    private static let cancelledError =
        JSONValue.object(ProtocolError(.cancelled, "the job was cancelled before this line ran").json)
    private static let expiredError =
        JSONValue.object(ProtocolError(.cancelled, "the job's deadline passed before this line ran").json)
    private static let abandonedError = JSONValue.object(ProtocolError(
        .internal, "abandoned after \(maxAttempts) attempts: the daemon stopped while it ran").json)

    private static func text(_ value: JSONValue) -> String {
        String(decoding: JSONCodec.encode(value), as: UTF8.self)
    }

    private func value(_ text: String, what: String) throws(JobStoreError) -> JSONValue {
        do {
            return try JSONCodec.decode(Array(text.utf8))
        } catch {
            throw .corrupt(path: path, detail: "\(what) is not JSON (\(error.message))")
        }
    }

    private func object(_ text: String, what: String) throws(JobStoreError) -> JSONObject {
        guard let object = try value(text, what: what).objectValue else {
            throw .corrupt(path: path, detail: "\(what) is not a JSON object")
        }
        return object
    }

    private func jobState(_ raw: String) throws(JobStoreError) -> JobState {
        guard let state = JobState(rawValue: raw) else { throw .corrupt(path: path, detail: "unknown job state '\(raw)'") }
        return state
    }

    private func jobFormat(_ raw: String) throws(JobStoreError) -> JobFormat {
        guard let format = JobFormat(rawValue: raw) else { throw .corrupt(path: path, detail: "unknown job format '\(raw)'") }
        return format
    }

    private func lineState(_ raw: String) throws(JobStoreError) -> LineState {
        guard let state = LineState(rawValue: raw) else { throw .corrupt(path: path, detail: "unknown line state '\(raw)'") }
        return state
    }

    // MARK: - Opening

    private static func configure(_ connection: Connection) throws(JobStoreError) {
        // WAL: readers (status, list) never wait for the writer. FULL: each commit is fsynced, so
        // a finished line survives a power loss, not only a crash; measured here, ~1.2–1.8 k
        // durable commits/s, far above the engine's line rate.
        let mode = try connection.queryOne("PRAGMA journal_mode = WAL") { row in row.text(0) }
        guard mode?.lowercased() == "wal" else {
            throw .cannotOpen(path: connection.path, detail: "could not switch to WAL (journal mode is \(mode ?? "unknown"))")
        }
        try connection.script(
            """
            PRAGMA synchronous = FULL;
            PRAGMA foreign_keys = ON;
            PRAGMA busy_timeout = 5000;
            """)
    }

    private static func migrate(_ connection: Connection) throws(JobStoreError) {
        try connection.transaction { () throws(JobStoreError) in
            let current = Int(try connection.queryOne("PRAGMA user_version") { row in row.int(0) } ?? 0)
            guard current <= Schema.version else {
                throw .unsupportedSchema(path: connection.path, version: current)
            }
            for step in Schema.steps[current...] { try connection.script(step) }
            if current < Schema.version { try connection.script("PRAGMA user_version = \(Schema.version)") }
        }
    }
}

/// The few file operations SQLite does not do for the store.
private enum Files {
    static func makeDirectory(_ path: String) throws(JobStoreError) {
        if mkdir(path, 0o700) == 0 {
            syncDirectory(parent(of: path))
            return
        }
        let code = errno
        var info = stat()
        guard code == EEXIST, stat(path, &info) == 0 else { throw failure(path, code, "cannot create directory") }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .cannotOpen(path: path, detail: "not a directory") }
    }

    /// The lock lives in its own file: closing any descriptor of the database file would drop
    /// the POSIX locks SQLite holds on it.
    static func lock(_ path: String) throws(JobStoreError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw failure(path, errno, "cannot open the lock file") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw .locked(path: path) }
            throw failure(path, code, "cannot lock")
        }
        return fd
    }

    /// SQLite would create the file 0644; its -wal and -shm files copy the mode of the database.
    /// A file left wider by anything else is narrowed.
    static func createPrivate(_ path: String, syncing directory: String) throws(JobStoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd >= 0 {
            close(fd)
            // So that the file's name, not only its contents, survives a power loss.
            syncDirectory(directory)
            return
        }
        guard errno == EEXIST else { throw failure(path, errno, "cannot create") }
        var info = stat()
        guard lstat(path, &info) == 0 else { throw failure(path, errno, "cannot stat") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .cannotOpen(path: path, detail: "not a regular file") }
        if info.st_mode & 0o077 != 0, chmod(path, 0o600) != 0 { throw failure(path, errno, "cannot chmod 0600") }
    }

    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func failure(_ path: String, _ code: Int32, _ what: String) -> JobStoreError {
        let detail = "\(what): \(String(cString: strerror(code)))"
        switch code {
        case ENOSPC, EDQUOT: return .diskFull(path: path)
        case EROFS: return .readOnly(path: path, detail: detail)
        case EIO: return .ioError(path: path, detail: detail)
        default: return .cannotOpen(path: path, detail: detail)
        }
    }
}
