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
            let submitted = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: nil, now: t0)
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
            let first = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: nil, now: t0)
            let second = try store.submit(owner: bob, lines: try validLines(2), runNow: true, deadline: nil, now: t0 + 1)
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
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0)
            _ = try store.claimLines(limit: 5, now: t0, windowOpen: false)
            try store.fail(jobID: job.id, lineNo: 1, error: ["code": "internal", "message": "x"], now: t0 + 1)
            let ended = try store.fail(jobID: job.id, lineNo: 2, error: ["code": "internal", "message": "y"], now: t0 + 2)
            #expect(ended.state == .failed && ended.error == "every line failed" && ended.finishedAt == t0 + 2)
        }
    }

    @Test func onlyALineInFlightCanBeFinished() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0)
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
            let overnight = try store.submit(owner: alice, lines: try validLines(2), runNow: false, deadline: nil, now: t0)
            #expect(try store.claimLines(limit: 10, now: t0 + 1, windowOpen: false).isEmpty)
            let urgent = try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 2)
            let now = try store.claimLines(limit: 10, now: t0 + 3, windowOpen: false)
            #expect(now.map(\.jobID) == [urgent.id])
            let opened = try store.claimLines(limit: 10, now: t0 + 4, windowOpen: true)
            #expect(opened.map(\.jobID) == [overnight.id, overnight.id])
        }
    }

    @Test func pastTheDeadlineAJobExpires() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(3), runNow: true, deadline: t0 + 10, now: t0)
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
            let job = try store.submit(owner: alice, lines: try validLines(1), runNow: false, deadline: t0 + 1, now: t0)
            #expect(try store.expireOverdue(now: t0 + 0.5) == 0)
            #expect(try store.expireOverdue(now: t0 + 1) == 1)
            #expect(try store.job(id: job.id, requester: alice).state == .expired)
        }
    }

    @Test func cancelStopsQueuedLinesAndKeepsFinishedOnes() throws {
        try withStore { store, _ in
            let job = try store.submit(owner: alice, lines: try validLines(4), runNow: true, deadline: nil, now: t0)
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
            let job = try store.submit(owner: alice, lines: try validLines(2), runNow: true, deadline: nil, now: t0)
            _ = try store.claimLines(limit: 1, now: t0, windowOpen: false)
            let released = try store.release(jobID: job.id, lineNo: 1, now: t0 + 1)
            #expect(released.state == .inProgress && released.counts.queued == 2)
            let again = try store.claimLines(limit: 1, now: t0 + 2, windowOpen: false)
            #expect(again.map(\.lineNo) == [1] && again[0].attempt == 2)
        }
    }

    @Test func onlyTheOwnerAndRootSeeAJob() throws {
        try withStore { store, _ in
            let mine = try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0)
            let theirs = try store.submit(owner: bob, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 1)
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
            #expect(thrown { () throws(JobStoreError) in try store.submit(owner: alice, lines: [], runNow: true, deadline: nil, now: t0) }
                == .invalidSubmission("a job needs at least one line"))
            let twice = try validLines(2) + (try validLines(1))
            #expect(thrown { () throws(JobStoreError) in try store.submit(owner: alice, lines: twice, runNow: true, deadline: nil, now: t0) }
                == .invalidSubmission("duplicate custom_id 'q1'"))
            #expect(thrown { () throws(JobStoreError) in
                try store.submit(owner: alice, lines: try! validLines(1), runNow: true, deadline: t0, now: t0)
            } != nil)
            #expect(try store.list(requester: root).isEmpty)
        }
    }

    @Test func pendingCountsAndETA() throws {
        try withStore { store, _ in
            #expect(try store.pendingCounts() == PendingCounts())
            let a = try store.submit(owner: alice, lines: try validLines(4), runNow: true, deadline: nil, now: t0)
            _ = try store.submit(owner: alice, lines: try validLines(2), runNow: false, deadline: nil, now: t0 + 1)
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
            let job = try store.submit(owner: alice, lines: lines, runNow: true, deadline: nil, now: t0)
            let claimed = try store.claimLines(limit: 1, now: t0, windowOpen: false)
            #expect(claimed[0].customID == "naïve \u{0}id")
            #expect(claimed[0].request == ["prompt": "¿qué? 🦆\u{0}end", "temperature": 0.7])
            try store.complete(jobID: job.id, lineNo: 1, result: ["text": "", "alpha": 0.1], now: t0)
            #expect(try store.results(id: job.id, requester: alice)[0].result == ["text": "", "alpha": 0.1])
        }
    }
}
