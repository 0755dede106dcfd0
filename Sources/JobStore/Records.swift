import LookaheadProtocol

/// A job's life, as docs/protocol.md names it: `validating → queued → in_progress →
/// completed | failed | cancelled | expired`. The raw values are the stored and wire spellings.
public enum JobState: String, Sendable, Hashable, CaseIterable {
    case validating
    case queued
    case inProgress = "in_progress"
    case completed
    case failed
    case cancelled
    case expired

    /// Nothing more will happen to a job in a final state (lines already in flight may still record their results).
    public var isFinal: Bool {
        switch self {
        case .completed, .failed, .cancelled, .expired: return true
        case .validating, .queued, .inProgress: return false
        }
    }
}

/// One line's life: `queued → in_progress → done | failed`, back to `queued` when a crash or
/// `release` takes it out of flight, or `cancelled` / `expired` when its job ends before it runs.
public enum LineState: String, Sendable, Hashable, CaseIterable {
    case queued
    case inProgress = "in_progress"
    case done
    case failed
    case cancelled
    case expired

    public var isFinished: Bool {
        switch self {
        case .done, .failed, .cancelled, .expired: return true
        case .queued, .inProgress: return false
        }
    }
}

/// How many of a job's lines are in each state; they add up to `total`.
public struct LineCounts: Sendable, Hashable {
    public var total = 0
    public var queued = 0
    public var inProgress = 0
    public var done = 0
    public var failed = 0
    public var cancelled = 0
    public var expired = 0

    public init() {}

    /// Lines that will still run: queued or in flight.
    public var remaining: Int { queued + inProgress }
}

public struct JobRecord: Sendable, Hashable {
    /// `job_` and 16 hex digits.
    public var id: String
    /// The uid that submitted the job; only it and root may read or cancel the job.
    public var owner: UInt32
    public var state: JobState
    /// Unix seconds.
    public var createdAt: Double
    /// When the first line was handed out.
    public var startedAt: Double?
    /// When the job reached a final state.
    public var finishedAt: Double?
    /// Unix seconds after which unstarted lines are no longer run.
    public var deadline: Double?
    /// Runs at once instead of waiting for the drain window.
    public var runNow: Bool
    public var counts: LineCounts
    /// Why the job ended as it did, when that is not plain success.
    public var error: String?
    /// The key it was submitted with, which makes submitting it again return this job.
    public var idempotencyKey: String?
    /// How its lines were written, and so how its results read back.
    public var format: JobFormat

    /// The share of lines answered (done or failed), 0...1.
    public var progress: Double {
        counts.total == 0 ? 1 : Double(counts.done + counts.failed) / Double(counts.total)
    }

    /// Seconds until the remaining lines are through at the given rate; 0 when none remain, nil
    /// when the rate is unknown (not positive) or the job will not run again.
    public func eta(throughputLinesPerSecond rate: Double) -> Double? {
        guard counts.remaining > 0 else { return 0 }
        guard !state.isFinal, rate > 0, rate.isFinite else { return nil }
        return Double(counts.remaining) / rate
    }
}

/// What `JobStore.submit` stored, or found stored under the same idempotency key.
public struct SubmittedJob: Sendable, Hashable {
    public var job: JobRecord
    /// The job was already there: submitted before by the same owner with the same key.
    public var duplicate: Bool
}

/// What one uid may have in the store unfinished (queued or running), so that a single user's
/// batches cannot fill the disk or the queue for everyone.
public struct JobQuota: Sendable, Hashable {
    /// Jobs not yet in a final state.
    public var jobs: Int
    /// Lines queued or in flight.
    public var lines: Int
    /// Bytes stored for the jobs not yet in a final state (their lines' custom ids and requests).
    public var bytes: Int

    public init(jobs: Int, lines: Int, bytes: Int) {
        self.jobs = jobs
        self.lines = lines
        self.bytes = bytes
    }
}

/// One of `JobQuota`'s limits; the raw value is the configuration key that sets it.
public enum QuotaLimit: String, Sendable, Hashable, CaseIterable {
    case jobs = "max_jobs_per_user"
    case lines = "max_job_lines_per_user"
    case bytes = "max_job_bytes_per_user"

    /// What it counts, for messages.
    var counted: String {
        switch self {
        case .jobs: return "unfinished jobs"
        case .lines: return "lines queued or running"
        case .bytes: return "bytes in unfinished jobs"
        }
    }
}

/// Where a page of `JobStore.list` ends, for the next page to begin after: jobs are listed newest
/// first, by creation time and then id. On the wire it is an opaque string (`next_after`).
public struct JobCursor: Sendable, Hashable, LosslessStringConvertible {
    public var createdAt: Double
    public var id: String

    public init(after job: JobRecord) {
        createdAt = job.createdAt
        id = job.id
    }

    /// `description`'s form: the creation time as Swift prints it (which reads back exactly),
    /// a slash, the id.
    public init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let createdAt = Double(text[..<slash]), createdAt.isFinite
        else { return nil }
        let id = text[text.index(after: slash)...]
        guard !id.isEmpty else { return nil }
        self.createdAt = createdAt
        self.id = String(id)
    }

    public var description: String { "\(createdAt)/\(id)" }
}

/// A line handed to the engine by `claimLines`. It stays in_progress until `complete`, `fail`
/// or `release` names it, or a restart puts it back in the queue.
public struct ClaimedLine: Sendable, Hashable {
    public var jobID: String
    /// 1-based position in the submitted job.
    public var lineNo: Int
    public var customID: String
    public var owner: UInt32
    /// Its job's format, which says how to read `request`.
    public var format: JobFormat
    /// As validated and stored at submit (`ValidatedLine.request`).
    public var request: JSONObject
    /// 1 on the first run; more after a crash or a release put the line back.
    public var attempt: Int

    /// What the engine is asked, translated as at submission.
    public func ask() throws(JobInputError) -> LineAsk { try LineAsk(format: format, request: request) }
}

/// A line as `results` reports it: `result` when done, `error` when failed, cancelled or expired,
/// neither while it waits or runs.
public struct LineResult: Sendable, Hashable {
    public var lineNo: Int
    public var customID: String
    public var state: LineState
    public var result: JSONValue?
    public var error: JSONValue?
    public var attempts: Int
    public var finishedAt: Double?
}

/// What `recoverInFlight` did with the lines a stopped daemon left in flight.
public struct Recovery: Sendable, Hashable {
    /// Back in the queue, to run again.
    public var requeued = 0
    /// Failed: they had run `JobStore.maxAttempts` times.
    public var abandoned = 0

    public init(requeued: Int = 0, abandoned: Int = 0) {
        self.requeued = requeued
        self.abandoned = abandoned
    }
}

/// What `status` reports about batch work.
public struct PendingCounts: Sendable, Hashable {
    public var queuedJobs = 0
    public var inProgressJobs = 0
    public var queuedLines = 0
    public var inProgressLines = 0

    public init() {}
}
