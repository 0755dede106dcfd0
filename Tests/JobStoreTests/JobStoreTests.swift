import JobStore
import LookaheadProtocol
import Testing
import TestSupport

private let alice: UInt32 = 1000
private let bob: UInt32 = 1001
private let root: UInt32 = 0

/// A store in a fresh directory, for tests that need nothing else.
private func withStore(_ body: (JobStore, TempDir) throws -> Void) throws {
    let dir = try TempDir("jobstore-test")
    defer { dir.remove() }
    let store = try JobStore(directory: dir.sub("state"))
    try body(store, dir)
    #expect(try store.counterMismatches() == [], "per-job counters must match the lines")
}

@Suite struct JobStoreTests {
    @Test func submitClaimCompleteRoundTrip() throws {
        try withStore { store, _ in
            let submitted = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: nil, now: t0).job
            #expect(submitted.state == .queued)
            #expect(submitted.id.hasPrefix("job_") && submitted.id.count == 20)
            #expect(submitted.id.dropFirst(4).allSatisfy { $0.isHexDigit })
            #expect(submitted.counts.total == 3 && submitted.counts.queued == 3)
            #expect(submitted.startedAt == nil && submitted.progress == 0)

            let claimed = try store.claimLines(limit: 10, now: t0 + 1, windowOpen: false)
            #expect(claimed.map(\.lineNo) == [1, 2, 3])
            #expect(claimed.map(\.customID) == ["q1", "q2", "q3"])
            #expect(claimed.allSatisfy { $0.attempt == 1 && $0.owner == alice && $0.jobID == submitted.id })
            #expect(claimed[0].request == ["prompt": "prompt 1", "max_tokens": 16])
            #expect(try store.claimLines(limit: 10, now: t0 + 1, windowOpen: true).isEmpty, "nothing is handed out twice")

            var job = try store.job(id: submitted.id, requester: alice)
            #expect(job.state == .inProgress && job.startedAt == t0 + 1 && job.counts.inProgress == 3)

            // Finished out of order; results come back in line order.
            try store.complete(jobID: submitted.id, lineNo: 3, result: answer("c"), now: t0 + 2)
            try store.fail(jobID: submitted.id, lineNo: 2, error: ["code": "internal", "message": "boom"], now: t0 + 3)
            job = try store.job(id: submitted.id, requester: alice)
            #expect(job.state == .inProgress && job.finishedAt == nil)
            #expect(job.progress == 2.0 / 3.0)
            job = try store.complete(jobID: submitted.id, lineNo: 1, result: answer("a"), now: t0 + 4)
            #expect(job.state == .completed && job.finishedAt == t0 + 4 && job.error == nil)
            #expect(job.counts.done == 2 && job.counts.failed == 1 && job.counts.remaining == 0 && job.progress == 1)

            let results = try store.results(id: submitted.id, requester: alice)
            #expect(results.map(\.customID) == ["q1", "q2", "q3"])
            #expect(results.map(\.state) == [.done, .failed, .done])
            #expect(results[0].result == answer("a") && results[0].error == nil)
            #expect(results[1].error == ["code": "internal", "message": "boom"] && results[1].result == nil)
            #expect(results[2].result == answer("c") && results[2].finishedAt == t0 + 2)
            #expect(results.allSatisfy { $0.attempts == 1 })
        }
    }

    @Test func oldestJobFirstInLineOrderAcrossJobs() throws {
        try withStore { store, _ in
            let first = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: nil, now: t0).job
            let second = try store.submit(owner: bob, lines: try validLines(2), runNow: true, deadline: nil, now: t0 + 1).job
            let a = try store.claimLines(limit: 2, now: t0 + 2, windowOpen: false)
            #expect(a.map { "\($0.jobID == first.id ? "A" : "B")\($0.lineNo)" } == ["A1", "A2"])
            let b = try store.claimLines(limit: 2, now: t0 + 3, windowOpen: false)
            #expect(b.map { "\($0.jobID == first.id ? "A" : "B")\($0.lineNo)" } == ["A3", "B1"])
            #expect(try store.job(id: second.id, requester: bob).startedAt == t0 + 3)
            #expect(try store.claimLines(limit: 0, now: t0 + 4, windowOpen: true).isEmpty)
        }
    }

    @Test func everyLineFailedMeansTheJobFailed() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
            _ = try store.claimLines(limit: 5, now: t0, windowOpen: false)
            try store.fail(jobID: job.id, lineNo: 1, error: ["code": "internal", "message": "x"], now: t0 + 1)
            let ended = try store.fail(jobID: job.id, lineNo: 2, error: ["code": "internal", "message": "y"], now: t0 + 2)
            #expect(ended.state == .failed && ended.error == "every line failed" && ended.finishedAt == t0 + 2)
        }
    }

    @Test func onlyALineInFlightCanBeFinished() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
            // Still queued.
            #expect(thrown { () throws(JobStoreError) in try store.complete(jobID: job.id, lineNo: 1, result: answer("x"), now: t0) }
                == .lineNotInProgress(jobID: job.id, lineNo: 1, state: .queued))
            _ = try store.claimLines(limit: 1, now: t0, windowOpen: false)
            try store.complete(jobID: job.id, lineNo: 1, result: answer("first"), now: t0 + 1)
            // A second answer for the same line is what must never be stored.
            #expect(thrown { () throws(JobStoreError) in try store.complete(jobID: job.id, lineNo: 1, result: answer("again"), now: t0 + 2) }
                == .lineNotInProgress(jobID: job.id, lineNo: 1, state: .done))
            #expect(thrown { () throws(JobStoreError) in try store.fail(jobID: job.id, lineNo: 1, error: "x", now: t0 + 2) }
                == .lineNotInProgress(jobID: job.id, lineNo: 1, state: .done))
            #expect(thrown { () throws(JobStoreError) in try store.complete(jobID: job.id, lineNo: 9, result: answer("x"), now: t0) }
                == .lineNotInProgress(jobID: job.id, lineNo: 9, state: nil))
            #expect(thrown { () throws(JobStoreError) in try store.release(jobID: "job_nope", lineNo: 1, now: t0) }
                == .lineNotInProgress(jobID: "job_nope", lineNo: 1, state: nil))
            #expect(try store.results(id: job.id, requester: alice)[0].result == answer("first"))
        }
    }

    @Test func closedWindowHoldsBackAllButRunNowJobs() throws {
        try withStore { store, _ in
            let overnight = try store.submit(owner: alice, lines: try validLines(2), runNow: false, deadline: nil, now: t0).job
            #expect(try store.claimLines(limit: 10, now: t0 + 1, windowOpen: false).isEmpty)
            let urgent = try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 2).job
            let now = try store.claimLines(limit: 10, now: t0 + 3, windowOpen: false)
            #expect(now.map(\.jobID) == [urgent.id])
            let opened = try store.claimLines(limit: 10, now: t0 + 4, windowOpen: true)
            #expect(opened.map(\.jobID) == [overnight.id, overnight.id])
        }
    }

    @Test func pastTheDeadlineAJobExpires() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: t0 + 10, now: t0).job
            let early = try store.claimLines(limit: 1, now: t0 + 5, windowOpen: false)
            #expect(early.map(\.lineNo) == [1])
            // The window being closed does not stop a job from expiring.
            let late = try store.claimLines(limit: 10, now: t0 + 10, windowOpen: false)
            #expect(late.isEmpty)
            var expired = try store.job(id: job.id, requester: alice)
            #expect(expired.state == .expired && expired.finishedAt == t0 + 10)
            #expect(expired.counts.expired == 2 && expired.counts.inProgress == 1)
            #expect(expired.error == "the deadline passed with 2 lines not yet run")
            #expect(try store.claimLines(limit: 10, now: t0 + 11, windowOpen: true).isEmpty)

            // The line already running may still finish; the job stays expired.
            expired = try store.complete(jobID: job.id, lineNo: 1, result: answer("in time"), now: t0 + 12)
            #expect(expired.state == .expired && expired.counts.done == 1 && expired.counts.remaining == 0)
            let results = try store.results(id: job.id, requester: alice)
            #expect(results.map(\.state) == [.done, .expired, .expired])
            #expect(results[1].error?.objectValue?["code"] == "cancelled")
            #expect(thrown { () throws(JobStoreError) in try store.cancel(jobID: job.id, requester: alice, now: t0 + 13) }
                == .alreadyFinished(jobID: job.id, state: .expired))
        }
    }

    @Test func expireOverdueWorksWithoutClaiming() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(1), runNow: false, deadline: t0 + 1, now: t0).job
            #expect(try store.expireOverdue(now: t0 + 0.5) == 0)
            #expect(try store.expireOverdue(now: t0 + 1) == 1)
            #expect(try store.job(id: job.id, requester: alice).state == .expired)
        }
    }

    @Test func cancelStopsQueuedLinesAndKeepsFinishedOnes() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(4), runNow: true, deadline: nil, now: t0).job
            _ = try store.claimLines(limit: 3, now: t0 + 1, windowOpen: false)
            try store.complete(jobID: job.id, lineNo: 1, result: answer("kept"), now: t0 + 2)

            let cancelled = try store.cancel(jobID: job.id, requester: alice, now: t0 + 3)
            #expect(cancelled.state == .cancelled && cancelled.finishedAt == t0 + 3)
            #expect(cancelled.counts.cancelled == 1 && cancelled.counts.inProgress == 2 && cancelled.counts.done == 1)
            #expect(try store.claimLines(limit: 10, now: t0 + 4, windowOpen: true).isEmpty)

            // Of the two lines in flight, one finishes and is kept, one is stopped by the daemon.
            var after = try store.complete(jobID: job.id, lineNo: 2, result: answer("late"), now: t0 + 5)
            #expect(after.state == .cancelled)
            after = try store.release(jobID: job.id, lineNo: 3, now: t0 + 6)
            #expect(after.state == .cancelled && after.counts.cancelled == 2 && after.counts.remaining == 0)
            #expect(try store.results(id: job.id, requester: alice).map(\.state) == [.done, .done, .cancelled, .cancelled])

            #expect(thrown { () throws(JobStoreError) in try store.cancel(jobID: job.id, requester: alice, now: t0 + 7) }
                == .alreadyFinished(jobID: job.id, state: .cancelled))
        }
    }

    @Test func releaseRequeuesALineOfALiveJob() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0).job
            _ = try store.claimLines(limit: 1, now: t0, windowOpen: false)
            let released = try store.release(jobID: job.id, lineNo: 1, now: t0 + 1)
            #expect(released.state == .inProgress && released.counts.queued == 2)
            let again = try store.claimLines(limit: 1, now: t0 + 2, windowOpen: false)
            #expect(again.map(\.lineNo) == [1] && again[0].attempt == 2)
        }
    }

    @Test func onlyTheOwnerAndRootSeeAJob() throws {
        try withStore { store, _ in
            let mine = try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0).job
            let theirs = try store.submit(owner: bob, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 1).job
            let hidden = JobStoreError.notFound(jobID: mine.id)
            #expect(thrown { () throws(JobStoreError) in try store.job(id: mine.id, requester: bob) } == hidden)
            #expect(thrown { () throws(JobStoreError) in try store.results(id: mine.id, requester: bob) } == hidden)
            #expect(thrown { () throws(JobStoreError) in try store.cancel(jobID: mine.id, requester: bob, now: t0) } == hidden)
            // Indistinguishable from a job that does not exist.
            #expect(thrown { () throws(JobStoreError) in try store.job(id: "job_0000000000000000", requester: bob) }
                == .notFound(jobID: "job_0000000000000000"))
            #expect(try store.job(id: mine.id, requester: alice).state == .queued, "bob's attempt changed nothing")

            #expect(try store.list(requester: alice).map(\.id) == [mine.id])
            #expect(try store.list(requester: bob).map(\.id) == [theirs.id])
            #expect(try store.list(requester: 4242).isEmpty)
            #expect(try store.list(requester: root).map(\.id) == [theirs.id, mine.id], "root sees all, newest first")
            #expect(try store.results(id: mine.id, requester: root).count == 1)
            #expect(try store.cancel(jobID: mine.id, requester: root, now: t0 + 2).state == .cancelled)
        }
    }

    @Test func submitRefusesWhatValidationCannotCatch() throws {
        try withStore { store, _ in
            #expect(thrown { () throws(JobStoreError) in try store.submit(owner: alice, lines: [], runNow: true, deadline: nil, now: t0).job }
                == .invalidSubmission("a job needs at least one line"))
            let twice = try validLines(2) + (try validLines(1))
            #expect(thrown { () throws(JobStoreError) in try store.submit(owner: alice, lines: twice, runNow: true, deadline: nil, now: t0).job }
                == .invalidSubmission("duplicate custom_id 'q1'"))
            #expect(thrown { () throws(JobStoreError) in
                try store.submit(owner: alice, lines: try! validLines(1), runNow: true, deadline: t0, now: t0).job
            } != nil)
            #expect(try store.list(requester: root).isEmpty)
        }
    }

    @Test func pendingCountsAndETA() throws {
        try withStore { store, _ in
            #expect(try store.pendingCounts() == PendingCounts())
            let a = try store.submit(owner: alice, lines: try validLines(4), runNow: true, deadline: nil, now: t0).job
            _ = try store.submit(owner: alice, lines: try validLines(2), runNow: false, deadline: nil, now: t0 + 1).job
            _ = try store.claimLines(limit: 2, now: t0 + 2, windowOpen: false)
            var expected = PendingCounts()
            expected.queuedJobs = 1
            expected.inProgressJobs = 1
            expected.queuedLines = 4
            expected.inProgressLines = 2
            #expect(try store.pendingCounts() == expected)

            let job = try store.job(id: a.id, requester: alice)
            #expect(job.eta(throughputLinesPerSecond: 2) == 2, "4 lines left at 2 lines/s")
            #expect(job.eta(throughputLinesPerSecond: 0) == nil)
            let cancelled = try store.cancel(jobID: a.id, requester: alice, now: t0 + 3)
            #expect(cancelled.eta(throughputLinesPerSecond: 2) == nil, "it will not run again")
        }
    }

    @Test func textSurvivesStorageExactly() throws {
        try withStore { store, _ in
            let lines = try JobInput.validate(lines: [["custom_id": "naïve \u{0}id", "prompt": "¿qué? 🦆\u{0}end", "temperature": 0.7]])
            let job = try store.submit(owner: alice, lines: lines, runNow: true, deadline: nil, now: t0).job
            let claimed = try store.claimLines(limit: 1, now: t0, windowOpen: false)
            #expect(claimed[0].customID == "naïve \u{0}id")
            #expect(claimed[0].request == ["prompt": "¿qué? 🦆\u{0}end", "temperature": 0.7])
            try store.complete(jobID: job.id, lineNo: 1, result: ["text": "", "alpha": 0.1], now: t0)
            #expect(try store.results(id: job.id, requester: alice)[0].result == ["text": "", "alpha": 0.1])
        }
    }
}

/// What keeps one heavy or careless client from costing everyone else: pages that read only
/// themselves, quotas, idempotent submission, and retention.
@Suite struct JobStoreLimitsTests {
    /// Paging through a job must cost O(page), not a read of the whole job per page: counted in
    /// rows SQLite handed back, since no timing could tell reliably.
    @Test func aResultsPageReadsOnlyItsOwnLines() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(500), runNow: true, deadline: nil, now: t0).job
            let before = store.rowsReadForTesting
            let page = try store.results(id: job.id, requester: alice, after: 400, limit: 10)
            #expect(page.map(\.lineNo) == Array(401...410))
            #expect(page.map(\.customID) == (401...410).map { "q\($0)" })
            // The job's own row, then the page's ten: not the 400 lines before it or the 90 after.
            #expect(store.rowsReadForTesting - before == 11)

            #expect(try store.results(id: job.id, requester: alice, after: 495, limit: 10).map(\.lineNo) == Array(496...500))
            #expect(try store.results(id: job.id, requester: alice, after: 500, limit: 10).isEmpty)
            #expect(thrown { () throws(JobStoreError) in try store.results(id: job.id, requester: bob, after: 0, limit: 1) }
                == .notFound(jobID: job.id))
        }
    }

    @Test func listPagesNewestFirstAndGoOnPastTiesAndDeletions() throws {
        try withStore { store, _ in
            var ids: [String] = []
            // Two jobs created in the same instant: the id decides their order, so a page
            // boundary between them neither repeats nor skips one.
            for at in [t0, t0 + 1, t0 + 2, t0 + 2, t0 + 3] {
                ids.append(try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: at).job.id)
            }
            _ = try store.submit(owner: bob, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 4)
            let all = try store.list(requester: alice).map(\.id)
            #expect(Set(all) == Set(ids) && all.count == 5)
            #expect(all.first == ids[4] && all.last == ids[0])

            var paged: [String] = []
            var cursor: JobCursor?
            while true {
                let page = try store.list(requester: alice, after: cursor, limit: 1)
                guard let last = page.last else { break }
                paged += page.map(\.id)
                cursor = JobCursor(after: last)
                // The cursor survives its trip through the wire as text.
                #expect(JobCursor(cursor!.description) == cursor)
            }
            #expect(paged == all)

            // A page goes on from its cursor even when the job there has gone.
            let third = try #require(try store.list(requester: alice, limit: 3).last)
            _ = try store.cancel(jobID: third.id, requester: alice, now: t0 + 5)
            #expect(try store.deleteFinished(before: t0 + 6) == 1)
            #expect(try store.list(requester: alice, after: JobCursor(after: third), limit: 10).map(\.id) == Array(all.suffix(2)))

            for bad in ["", "x", "1700000000/", "/job_1", "nan/job_1", "inf/job_1"] { #expect(JobCursor(bad) == nil, "\(bad)") }
        }
    }

    @Test func quotasCountWhatAUserHasUnfinished() throws {
        try withStore { store, _ in
            let quota = JobQuota(jobs: 2, lines: 5, bytes: 1 << 20)
            func submit(_ owner: UInt32, _ lines: Int, at: Double) throws(JobStoreError) -> JobRecord {
                try store.submit(owner: owner, lines: try! validLines(lines), runNow: true, deadline: nil, now: at, quota: quota).job
            }
            let first = try submit(alice, 3, at: t0)
            #expect(thrown { () throws(JobStoreError) in try submit(alice, 3, at: t0 + 1) }
                == .overQuota(owner: alice, limit: .lines, held: 3, adding: 3, max: 5))
            let second = try submit(alice, 2, at: t0 + 2)
            let refused = thrown { () throws(JobStoreError) in try submit(alice, 1, at: t0 + 3) }
            #expect(refused == .overQuota(owner: alice, limit: .jobs, held: 2, adding: 1, max: 2))
            #expect(refused?.description == "uid 1000 has 2 unfinished jobs and this job adds 1: over max_jobs_per_user (2)")
            // Another user's room is their own.
            _ = try submit(bob, 5, at: t0 + 4)

            // Lines that have ended no longer count, though their job has not.
            _ = try store.claimLines(limit: 2, now: t0 + 5, windowOpen: false)
            try store.complete(jobID: first.id, lineNo: 1, result: answer("a"), now: t0 + 6)
            try store.complete(jobID: first.id, lineNo: 2, result: answer("b"), now: t0 + 6)
            _ = try store.cancel(jobID: second.id, requester: alice, now: t0 + 7)
            #expect(thrown { () throws(JobStoreError) in try submit(alice, 5, at: t0 + 8) }
                == .overQuota(owner: alice, limit: .lines, held: 1, adding: 5, max: 5))
            #expect(try submit(alice, 4, at: t0 + 9).state == .queued)

            // Bytes: what the lines take in the store, custom ids and requests.
            let line = try validLines(1)[0]
            let size = line.customID.utf8.count + String(decoding: JSONCodec.encode(.object(line.request)), as: UTF8.self).utf8.count
            let tight = JobQuota(jobs: 10, lines: 10, bytes: 2 * size)
            #expect(try store.submit(owner: 7, lines: [line], runNow: true, deadline: nil, now: t0, quota: tight).job.state == .queued)
            #expect(try store.submit(owner: 7, lines: try validLines(1, prefix: "r"), runNow: true, deadline: nil, now: t0, quota: tight).job.state == .queued)
            #expect(thrown { () throws(JobStoreError) in
                try store.submit(owner: 7, lines: try! validLines(1, prefix: "s"), runNow: true, deadline: nil, now: t0, quota: tight)
            } == .overQuota(owner: 7, limit: .bytes, held: 2 * size, adding: size, max: 2 * size))
        }
    }

    @Test func theSameKeyFromTheSameOwnerReturnsTheSameJob() throws {
        try withStore { store, _ in
            let first = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0, idempotencyKey: "nightly-42")
            #expect(!first.duplicate && first.job.idempotencyKey == "nightly-42")
            // A retry: the same job, however its lines look; nothing new stored, no quota used.
            let quota = JobQuota(jobs: 1, lines: 2, bytes: 1 << 20)
            let again = try store.submit(owner: alice, lines: try validLines(5), runNow: false, deadline: nil, now: t0 + 1,
                                         idempotencyKey: "nightly-42", quota: quota)
            #expect(again.duplicate && again.job == first.job)
            // Another owner's key is another key; no key is no key.
            let theirs = try store.submit(owner: bob, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 2, idempotencyKey: "nightly-42")
            #expect(!theirs.duplicate && theirs.job.id != first.job.id)
            let plain = [try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 3),
                         try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 4)]
            #expect(plain.allSatisfy { !$0.duplicate } && plain[0].job.id != plain[1].job.id)
            #expect(try store.list(requester: root).count == 4)
        }
    }

    /// With the clock passed in: a job ended more than the retention ago goes, with its lines;
    /// anything unfinished stays however old, and so does a job with a line still in flight.
    @Test func finishedJobsAreDeletedAfterTheirRetention() throws {
        try withStore { store, _ in
            let week = 7 * 86400.0
            let done = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0, idempotencyKey: "k").job
            _ = try store.claimLines(limit: 2, now: t0, windowOpen: false)
            try store.complete(jobID: done.id, lineNo: 1, result: answer("a"), now: t0 + 1)
            try store.fail(jobID: done.id, lineNo: 2, error: "x", now: t0 + 10)
            let old = try store.submit(owner: alice, lines: try validLines(1), runNow: false, deadline: nil, now: t0 - 30 * 86400).job
            let stopping = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0 + 20).job
            _ = try store.claimLines(limit: 1, now: t0 + 20, windowOpen: false)
            _ = try store.cancel(jobID: stopping.id, requester: alice, now: t0 + 21)

            #expect(try store.deleteFinished(before: t0 + 10 + week - 1 - week) == 0, "ended at t0+10: not yet")
            #expect(try store.deleteFinished(before: t0 + 100) == 1)
            #expect(thrown { () throws(JobStoreError) in try store.job(id: done.id, requester: alice) } == .notFound(jobID: done.id))
            #expect(try store.sqlForTesting("SELECT count(*) FROM lines WHERE job_id = '\(done.id)'") == ["0"])
            #expect(try store.list(requester: alice).map(\.id) == [stopping.id, old.id])
            // Its key is free again.
            #expect(!(try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 101, idempotencyKey: "k").duplicate))

            // The cancelled job's line in flight ends; then the job may go too.
            try store.release(jobID: stopping.id, lineNo: 1, now: t0 + 102)
            #expect(try store.deleteFinished(before: t0 + 200) == 1)
            #expect(try store.job(id: old.id, requester: alice).state == .queued)
        }
    }
}
