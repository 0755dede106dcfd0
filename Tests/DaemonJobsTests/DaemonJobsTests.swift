import Foundation
import LookaheadProtocol
import LookaheadDaemon
import Testing
import TestSupport

private let isRoot = getuid() == 0

/// Batch jobs end to end: the built lookaheadd on the cached default models, driven by
/// lookaheadctl and by the protocol client. Lines are `ar` with a few tokens each, so a line takes
/// a second or two on 2 cores.
@Suite("batch jobs", .serialized)
struct DaemonJobsTests {
    @Test func sixLinesComeBackOnceEach() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let daemon = try sandbox.start()
        // The last line is a conversation, as `ask` takes one.
        let chat: JSONValue = ["custom_id": "q6", "mode": "ar", "max_tokens": 8, "messages": [
            ["role": "system", "content": "Answer with one number."], ["role": "user", "content": "What is 6 plus 42?"],
        ]]
        let input = try sandbox.write("six.jsonl", questions(5, maxTokens: 8) + "\(chat)\n")
        let socket = ["--socket", sandbox.socket]

        let submitted = try lookaheadctl(["batch", "submit", "--now", "--json", input] + socket)
        #expect(submitted.exitCode == 0, "\(submitted.stderr)")
        let job = try JSONCodec.decode(Array(submitted.stdout.utf8))
        let id = try #require(job["id"]?.stringValue)
        #expect(job["counts"]?["total"]?.intValue == 6)
        #expect(job["owner_uid"]?.intValue == Int64(getuid()))

        let watched = try lookaheadctl(["batch", "status", "--watch", "--interval", "0.2", "--json", id] + socket)
        #expect(watched.exitCode == 0, "\(watched.stderr)")
        let last = try JSONCodec.decode(Array((watched.stdout.split(separator: "\n").last ?? "").utf8))
        #expect(last["state"] == "completed")
        #expect(last["counts"]?["done"] == 6 && last["counts"]?["failed"] == 0)

        let out = sandbox.path + "/out.jsonl"
        let fetched = try lookaheadctl(["batch", "results", id, "-o", out] + socket)
        #expect(fetched.exitCode == 0, "\(fetched.stderr)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            .map { try JSONCodec.decode(Array($0.utf8)) }
        #expect(lines.compactMap { $0["custom_id"]?.stringValue } == (1...6).map { "q\($0)" })
        for line in lines {
            #expect(line["state"] == "done")
            let result = try #require(line["result"])
            #expect(result["answer"]?.stringValue?.isEmpty == false)
            #expect(result["usage"]?["completion_tokens"] == result["tokens"])
            #expect(result["stats"]?["generated_tokens"] == result["tokens"])
            #expect(result["started_at"]?.doubleValue != nil)
        }

        let listed = try lookaheadctl(["batch", "list"] + socket)
        #expect(listed.stdout.contains(id) && listed.stdout.contains("completed") && listed.stdout.contains("6/6"))
        let status = try daemon.call("status")
        #expect(status["jobs"]?["queued"] == 0 && status["jobs"]?["in_progress"] == 0)
        #expect(status["drain_window"] == .null)
        #expect(daemon.stop() == 0)
    }

    /// A file in OpenAI's Batch format, as OpenAI's and vLLM's batch runners take it, comes back in
    /// OpenAI's output format; its bad lines are refused naming the body field, in OpenAI's terms.
    @Test func anOpenAIBatchFileComesBackInOpenAIsShape() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let daemon = try sandbox.start()
        let socket = ["--socket", sandbox.socket]
        let chat: [JSONValue] = (1...2).map { i in
            ["custom_id": .string("chat-\(i)"), "method": "POST", "url": "/v1/chat/completions", "body": [
                "model": "gpt-4o-mini", "max_tokens": 12, "lookahead": ["mode": "ar"],
                "messages": [["role": "system", "content": "Answer with one number."],
                             ["role": "user", "content": .string("What is \(i) plus \(i * 7)?")]],
            ]]
        }
        let text: JSONValue = ["custom_id": "text-1", "method": "POST", "url": "/v1/completions",
                               "body": ["prompt": "1, 2, 3, 4,", "max_tokens": 6, "lookahead": ["mode": "ar"]]]
        let input = try sandbox.write("openai.jsonl", (chat + [text]).map { "\($0)\n" }.joined())

        let submitted = try lookaheadctl(["batch", "submit", "--now", "--json", input] + socket)
        #expect(submitted.exitCode == 0, "\(submitted.stderr)")
        let job = try JSONCodec.decode(Array(submitted.stdout.utf8))
        let id = try #require(job["id"]?.stringValue)
        #expect(job["format"] == "openai" && job["counts"]?["total"] == 3)
        #expect(try daemon.wait(for: id, until: { $0.state == "completed" })["counts"]?["done"] == 3)

        let out = sandbox.path + "/out.jsonl"
        let fetched = try lookaheadctl(["batch", "results", id, "-o", out] + socket)
        #expect(fetched.exitCode == 0, "\(fetched.stderr)")
        let written = try String(contentsOfFile: out, encoding: .utf8)
        let lines = try written.split(separator: "\n").map { try #require(try JSONCodec.decode(Array($0.utf8)).objectValue) }
        #expect(lines.compactMap { $0["custom_id"]?.stringValue } == ["chat-1", "chat-2", "text-1"])
        let served = Methods.servedID(try #require(try daemon.call("models")["models"]?.arrayValue?.first?["name"]?.stringValue))
        for line in lines {
            #expect(line.keys.sorted() == ["custom_id", "error", "id", "response"])
            #expect(line["id"]?.stringValue?.hasPrefix("batch_req_") == true && line["error"] == .null)
            let response = try #require(line["response"]?.objectValue)
            #expect(response["status_code"] == 200 && response["request_id"]?.stringValue?.hasPrefix("req_") == true)
            let body = try #require(response["body"]?.objectValue)
            #expect(body["model"] == .string(served), "the served target, whatever the line named")
            let usage = try #require(body["usage"]?.objectValue)
            let prompt = try #require(usage["prompt_tokens"]?.intValue), completion = try #require(usage["completion_tokens"]?.intValue)
            #expect(prompt > 0 && completion > 0 && usage["total_tokens"]?.intValue == prompt + completion)
            let choice = try #require(body["choices"]?.arrayValue?.first)
            if line["custom_id"]?.stringValue?.hasPrefix("chat") == true {
                #expect(body["object"] == "chat.completion" && choice["message"]?["role"] == "assistant")
                #expect(choice["message"]?["content"]?.stringValue != nil)
                #expect(completion <= 12)
            } else {
                #expect(body["object"] == "text_completion" && choice["text"]?.stringValue?.isEmpty == false)
                #expect(completion <= 6)
            }
            #expect(["stop", "length"].contains(choice["finish_reason"]?.stringValue ?? ""))
        }
        let again = try lookaheadctl(["batch", "results", id] + socket)
        #expect(again.stdout == written, "the same output, ids included, every time it is read")

        // Found by the daemon's own checks (the token limit), named as OpenAI names it.
        let tooLong: JSONValue = ["custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
                                  "body": ["messages": [["role": "user", "content": "hi"]], "max_completion_tokens": 5000]]
        let error = try daemon.failure("jobs.submit", ["content": .string("\(chat[0])\n\(tooLong)\n")])
        #expect(error.code == .invalidParams && error.field == "body.max_completion_tokens")
        #expect(error.message == "line 2: body: max_tokens must be in 1...4096, got 5000")
        let mixed = try sandbox.write("mixed.jsonl", "\(chat[0])\n" + #"{"custom_id":"n","prompt":"hi"}"# + "\n")
        let refused = try lookaheadctl(["batch", "submit", mixed] + socket)
        #expect(refused.exitCode == 4 && refused.stderr.contains("line 2: a native line"), "\(refused)")
        #expect(daemon.stop() == 0)
    }

    /// `kill -9` with lines in flight, at three points of one job: after each restart the job
    /// goes on, and in the end every line is answered exactly once.
    @Test func killNineLosesAndRepeatsNothing() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let config = "max_batch_sessions = 2\n"
        var daemon = try sandbox.start(config: config)
        let total = 8
        let id = try daemon.submit(questions(total, maxTokens: 16))
        var kills: [String] = []
        for done in [0, 3, 5] {
            let seen = try daemon.wait(for: id) { $0.count("done") >= done && $0.count("in_progress") >= 1 }
            daemon.kill9()
            kills.append("\(seen.count("done")) done/\(seen.count("in_progress")) in flight")
            daemon = try sandbox.start(config: config)
        }
        let final = try daemon.waitUntilFinished(id)
        #expect(final.state == "completed")

        let fetched = try lookaheadctl(["batch", "results", id, "--socket", sandbox.socket])
        let lines = try fetched.stdout.split(separator: "\n").map { try #require(try JSONCodec.decode(Array($0.utf8)).objectValue) }
        var answers: [String: Int] = [:]
        for line in lines where line["state"] == "done" && line["result"]?["answer"] != nil {
            answers[line["custom_id"]?.stringValue ?? "?", default: 0] += 1
        }
        let expected = Set((1...total).map { "q\($0)" })
        let lost = expected.subtracting(answers.keys).count
        let duplicated = answers.values.reduce(0) { $0 + max(0, $1 - 1) } + answers.keys.filter { !expected.contains($0) }.count
        let redone = lines.reduce(0) { $0 + Int($1["attempts"]?.intValue ?? 1) - 1 }
        print("crash safety: \(kills.count) kill -9 (\(kills.joined(separator: "; "))), \(total) lines: "
              + "lost \(lost), duplicated \(duplicated), runs redone \(redone)")
        #expect(lines.count == total)
        #expect(lost == 0)
        #expect(duplicated == 0)
        // Each kill cut at least one line short, and each such line ran again.
        #expect(redone >= kills.count)
        #expect(daemon.log.contains("REQUEUED_LINES=1") || daemon.log.contains("REQUEUED_LINES=2"))
        #expect(daemon.stop() == 0)
    }

    /// Outside the drain window a job waits (a `now` job does not); inside, it runs. The time
    /// of day comes from the daemon's test hook, and the job survives the restart in between.
    @Test func drainWindowHoldsJobsUntilItOpens() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let config = "drain_window = 22:00-07:00\n"
        var daemon = try sandbox.start(config: config, environment: ["LOOKAHEAD_FAKE_TIME": "12:00"])
        let waiting = try daemon.submit(questions(2, maxTokens: 4), now: false)
        let urgent = try daemon.submit(questions(1, maxTokens: 4, first: 3), now: true)
        #expect(try daemon.waitUntilFinished(urgent).state == "completed")
        // The runner has looked at the queue every second meanwhile; give it two more looks.
        Thread.sleep(forTimeInterval: 2.2)
        let held = try daemon.job(waiting)
        #expect(held.state == "queued")
        #expect(held.count("queued") == 2 && held["started_at"] == .null && held["eta_seconds"] == .null)
        let window = try daemon.call("status")["drain_window"]
        #expect(window == ["open": false, "from": "22:00", "to": "07:00", "local_time": "12:00"])
        #expect(try daemon.call("status")["jobs"]?["queued"] == 1)
        #expect(daemon.stop() == 0)

        daemon = try sandbox.start(config: config, environment: ["LOOKAHEAD_FAKE_TIME": "23:30"])
        #expect(try daemon.call("status")["drain_window"]?["open"] == true)
        let ran = try daemon.waitUntilFinished(waiting)
        #expect(ran.state == "completed" && ran.count("done") == 2)
        #expect(daemon.stop() == 0)
    }

    /// With every session slot held by batch lines, an `ask` can start only by overtaking the
    /// batch: it takes the first slot a line frees, and the batch's next line waits for the one
    /// after (`started_at` in the line's result). The lines differ in length so that slots free
    /// one at a time: c1 runs throughout, c2, c3, c4 one after another beside it.
    @Test func askOvertakesTheBatch() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let daemon = try sandbox.start(config: "max_sessions = 2\nmax_batch_sessions = 2\n")
        // Lines that cannot stop early: they run to max_tokens.
        let counting = [("c1", 96), ("c2", 24), ("c3", 24), ("c4", 24)].map { id, tokens -> String in
            let line: JSONValue = ["custom_id": .string(id), "prompt": "Count from 1 to 200, separated by commas.",
                                   "mode": "ar", "max_tokens": JSONValue(tokens)]
            return "\(line)\n"
        }.joined()
        let id = try daemon.submit(counting)
        // c2 is done and c3 has taken its slot: both slots are held, by c1 and c3.
        try daemon.wait(for: id) { $0.count("done") >= 1 }
        let full = try daemon.poll(timeout: 30) { $0["sessions"]?["active"] == 2 && $0["sessions"]?["batch"] == 2 }
        if full == nil { throw TestFailure("the batch never held both slots: \(try daemon.call("status"))") }

        let asker = try Client(path: sandbox.socket)
        let askID = asker.makeID()
        let sent = unixNow()
        // An answer that cannot stop early either: it holds its slot for all of its 16 tokens.
        try asker.send(Request(id: askID, method: "ask", params: ["prompt": "Count from 1 to 100, separated by commas.",
                                                                  "mode": "ar", "max_tokens": 16]))
        // No slot is free, so the ask is queued ...
        let held = try daemon.poll(timeout: 2, every: 0.01) { $0["sessions"]?["queued"] == 1 && $0["sessions"]?["batch"] == 2 }
        #expect(held != nil, "the ask was never queued: a slot was free")
        // ... until c3 ends and the ask takes its slot: one batch session beside it.
        let admitted = try daemon.poll(timeout: 60, every: 0.01) { $0["sessions"]?["active"] == 2 && $0["sessions"]?["batch"] == 1 }
        var final: ServerMessage?
        while final == nil { let m = try asker.next(); if m.isFinal, m.id == askID { final = m } }
        guard case .result(let r) = final else { Issue.record("the ask failed: \(String(describing: final))"); return }
        #expect(r.result["tokens"] == 16)

        #expect(try daemon.waitUntilFinished(id).state == "completed")
        var starts: [String: Double] = [:]
        for line in try daemon.results(id) {
            if let name = line["custom_id"]?.stringValue, let at = line["result"]?["started_at"]?.doubleValue { starts[name] = at }
        }
        #expect(starts.count == 4)
        let c3 = try #require(starts["c3"]), c4 = try #require(starts["c4"]), at = try #require(admitted, "the ask was never admitted")
        print(String(format: "priority: ask sent %.2f s after c3 started, admitted %.2f s after sending; c4 started %.2f s after that",
                     sent - c3, at - sent, c4 - at))
        #expect(c3 < sent)
        #expect(at < c4, "the batch's next line started before the waiting ask")
        #expect(daemon.stop() == 0)
    }

    /// Jobs belong to the uid that submitted them (SO_PEERCRED): another user cannot see, read or
    /// cancel them, and is told they do not exist; root can do all three.
    @Test(.enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "runs clients as other uids"))
    func otherUsersCannotTouchAJob() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let tools = try ClientTools(in: sandbox)
        let daemon = try sandbox.start(config: "socket_mode = 0666\n")
        let owner: UInt32 = 65534, stranger: UInt32 = 65533
        let input = try sandbox.write("mine.jsonl", questions(2, maxTokens: 4))
        chmod(input, 0o644)
        let socket = ["--socket", sandbox.socket]
        func ctl(_ arguments: [String], as uid: UInt32?) throws -> Outcome {
            try lookaheadctl(arguments + socket, as: uid, tools: tools)
        }

        let submitted = try ctl(["batch", "submit", "--now", "--json", input], as: owner)
        #expect(submitted.exitCode == 0, "\(submitted.stderr)")
        let id = try #require(try JSONCodec.decode(Array(submitted.stdout.utf8))["id"]?.stringValue)

        let theirs = try ctl(["batch", "list", "--json"], as: stranger)
        #expect(theirs.exitCode == 0 && theirs.stdout == "{\"jobs\":[]}\n", "\(theirs)")
        for command in [["status", id], ["results", id], ["cancel", id]] {
            let refused = try ctl(["batch"] + command, as: stranger)
            #expect(refused.exitCode == 4, "\(command): \(refused)")
            #expect(refused.stderr.contains("not_found: no job \(id)"), "\(command): \(refused.stderr)")
        }

        let all = try ctl(["batch", "list", "--json"], as: nil)
        #expect(all.stdout.contains(id) && all.stdout.contains("\"owner_uid\":\(owner)"))
        #expect(try ctl(["batch", "status", "--watch", "--interval", "0.2", id], as: owner).exitCode == 0)
        for uid in [owner, 0] {
            let read = try ctl(["batch", "results", id], as: uid)
            #expect(read.exitCode == 0 && read.stdout.split(separator: "\n").count == 2, "uid \(uid): \(read)")
        }

        let second = try ctl(["batch", "submit", "--now", "--json", input], as: owner)
        let other = try #require(try JSONCodec.decode(Array(second.stdout.utf8))["id"]?.stringValue)
        #expect(try ctl(["batch", "cancel", other], as: stranger).exitCode == 4)
        let cancelled = try ctl(["batch", "cancel", "--json", other], as: nil)
        #expect(try JSONCodec.decode(Array(cancelled.stdout.utf8))["state"] == "cancelled", "\(cancelled)")
        #expect(try daemon.waitUntilFinished(other).state == "cancelled")

        // A file too large to send is read by the daemon, which takes only the submitter's own files.
        let big = try sandbox.write("big.jsonl", String(repeating: " ", count: 5 << 20))
        chmod(big, 0o644)
        let foreign = try ctl(["batch", "submit", big], as: owner)
        #expect(foreign.exitCode == 4 && foreign.stderr.contains("belongs to uid 0, not to you (uid \(owner))"), "\(foreign)")
        #expect(daemon.stop() == 0)
    }

    /// One user's jobs waiting outside the drain window hold their quota: over it a submission is
    /// `busy` (or `too_large` when it could never fit), naming the key; a resubmission with the
    /// same idempotency key gets the job back; the list comes in pages.
    @Test func quotasIdempotencyKeysAndListPages() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let daemon = try sandbox.start(config: "drain_window = 22:00-07:00\nmax_jobs_per_user = 2\nmax_job_lines_per_user = 3\n",
                                       environment: ["LOOKAHEAD_FAKE_TIME": "12:00"])
        let uid = getuid()
        func submit(_ lines: Int, first: Int, key: String? = nil) -> Params {
            var params: Params = ["content": .string(questions(lines, maxTokens: 4, first: first)), "now": false]
            if let key { params.object["idempotency_key"] = .string(key) }
            return params
        }
        let first = try daemon.call("jobs.submit", submit(2, first: 1, key: "nightly"))
        #expect(first["duplicate"] == false && first["idempotency_key"] == "nightly")
        let again = try daemon.call("jobs.submit", submit(2, first: 1, key: "nightly"))
        #expect(again["duplicate"] == true && again["id"] == first["id"])

        #expect(try daemon.failure("jobs.submit", submit(2, first: 3)) == ProtocolError(
            .busy, "uid \(uid) has 2 lines queued or running and this job adds 2: over max_job_lines_per_user (3)"))
        #expect(try daemon.failure("jobs.submit", submit(4, first: 3)).code == .tooLarge)
        let second = try daemon.call("jobs.submit", submit(1, first: 3))
        #expect(try daemon.failure("jobs.submit", submit(1, first: 4)) == ProtocolError(
            .busy, "uid \(uid) has 2 unfinished jobs and this job adds 1: over max_jobs_per_user (2)"))
        let badKey = try daemon.failure("jobs.submit", submit(1, first: 4, key: String(repeating: "k", count: 257)))
        #expect(badKey.code == .invalidParams && badKey.field == "idempotency_key")

        let page = try daemon.call("jobs.list", ["limit": 1])
        #expect(page["jobs"]?.arrayValue?.map { $0["id"] } == [second["id"]])
        let next = try #require(page["next_after"]?.stringValue)
        let last = try daemon.call("jobs.list", ["after": .string(next), "limit": 1])
        #expect(last["jobs"]?.arrayValue?.map { $0["id"] } == [first["id"]] && last["next_after"] == .null)
        #expect(try daemon.failure("jobs.list", ["after": "job_1"]).field == "after")

        let input = try sandbox.write("nightly.jsonl", questions(2, maxTokens: 4))
        let ctl = try lookaheadctl(["batch", "submit", "--idempotency-key", "nightly", input, "--socket", sandbox.socket])
        #expect(ctl.stdout == "\(first["id"]?.stringValue ?? "?") was already submitted with this key; it is queued\n", "\(ctl)")
        #expect(daemon.stop() == 0)
    }

    /// A line in flight each of the three times the daemon is killed is not run a fourth time.
    @Test func aLineThatOutlivesThreeDaemonsFails() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        var daemon = try sandbox.start()
        // Long enough to be cut short every time.
        let line: JSONValue = ["custom_id": "long", "prompt": "Count from 1 to 2000, separated by commas.", "mode": "ar", "max_tokens": 1500]
        let id = try daemon.submit("\(line)\n")
        for _ in 1...3 {
            try daemon.wait(for: id) { $0.count("in_progress") == 1 }
            daemon.kill9()
            daemon = try sandbox.start()
        }
        let job = try daemon.waitUntilFinished(id)
        #expect(job.state == "failed" && job.count("failed") == 1)
        let result = try #require(try daemon.results(id).first)
        #expect(result["attempts"] == 3)
        #expect(result["error"] == ["code": "internal", "message": "abandoned after 3 attempts: the daemon stopped while it ran"])
        #expect(daemon.log.contains("ABANDONED_LINES=1"), "\(daemon.log)")
        #expect(daemon.stop() == 0)
    }

    /// Each bad input is refused whole, with the line and field at fault; nothing is queued.
    @Test func badInputIsRefusedWithItsLine() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        let daemon = try sandbox.start(config: "max_job_bytes = 1048576\n")
        let good = #"{"custom_id":"a","prompt":"hi","mode":"ar","max_tokens":4}"#
        let cases: [(String, String, String)] = [
            (good + "\n{\"custom_id\":\"b\",\"prompt\":\"hi\"\n", "line 2: ", "content"),
            (good + "\n\n" + #"{"custom_id":"a","prompt":"again"}"#, "line 3: duplicate custom_id 'a' (first on line 1)", "custom_id"),
            (#"{"custom_id":"a","prompt":"hi","max_token":4}"#, "line 1: unknown field 'max_token'", "max_token"),
            (good + "\n" + #"{"custom_id":"b","prompt":"hi","max_tokens":5000}"#, "line 2: max_tokens must be in 1...4096, got 5000", "max_tokens"),
            ("", "the input has no lines", "content"),
            ("\n  \n", "the input has no lines", "content"),
        ]
        for (content, message, field) in cases {
            let error = try daemon.failure("jobs.submit", ["content": .string(content), "now": true])
            #expect(error.code == .invalidParams, "\(content)")
            #expect(error.message.hasPrefix(message), "\(error.message)")
            #expect(error.field == field)
        }

        let tooLarge = try daemon.failure("jobs.submit", ["content": .string(String(repeating: " ", count: (1 << 20) + 1))])
        #expect(tooLarge == ProtocolError(.tooLarge, "the input is 1048577 bytes, over the limit of 1048576 bytes (max_job_bytes)", field: "content"))
        let past = try daemon.failure("jobs.submit", ["content": .string(good), "deadline": 1000])
        #expect(past.code == .invalidParams && past.field == "deadline")
        #expect(try daemon.failure("jobs.get", ["id": "job_0000000000000000"]) == ProtocolError(.notFound, "no job job_0000000000000000", field: "id"))

        // Through lookaheadctl: the line number reaches the user; a file over 4 MiB goes by path,
        // and the daemon measures it before reading.
        let broken = try sandbox.write("broken.jsonl", good + "\nnot json\n")
        let refused = try lookaheadctl(["batch", "submit", broken, "--socket", sandbox.socket])
        #expect(refused.exitCode == 4 && refused.stderr.contains("invalid_params: line 2: "), "\(refused)")
        let huge = try sandbox.write("huge.jsonl", String(repeating: " ", count: 5 << 20))
        let measured = try lookaheadctl(["batch", "submit", huge, "--socket", sandbox.socket])
        #expect(measured.exitCode == 4 && measured.stderr.contains("too_large: the input is 5242880 bytes, over the limit of 1048576 bytes"), "\(measured)")
        try FileManager.default.removeItem(atPath: huge)

        #expect(try daemon.call("jobs.list") == ["jobs": [], "next_after": .null])
        #expect(daemon.stop() == 0)
    }

    /// A state directory the daemon cannot write (a read-only bind mount in a mount namespace of
    /// its own) is reported with its path; the daemon starts and answers `ask`.
    @Test(.enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "mounts in a private namespace"))
    func readOnlyStateDirectoryIsReported() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        try FileManager.default.createDirectory(atPath: sandbox.state, withIntermediateDirectories: false)
        let daemon = try sandbox.start(launcher: Self.privateMount("mount --bind -o ro \"$0\" \"$0\"", on: sandbox.state))

        let error = try daemon.failure("jobs.submit", ["content": .string(questions(1, maxTokens: 4)), "now": true])
        #expect(error.code == .internal)
        #expect(error.message.contains(sandbox.state) && error.message.contains("read-only"), "\(error.message)")
        #expect(try daemon.call("status")["jobs"]?["error"]?.stringValue?.contains(sandbox.state) == true)
        #expect(try daemon.call("ask", ["prompt": "hi", "mode": "ar", "max_tokens": 2])["tokens"] == 2)
        #expect(daemon.isRunning)
        #expect(daemon.stop() == 0)
    }

    /// A full disk (a 256 KiB tmpfs) fails the submission that does not fit, naming the file; the
    /// daemon goes on, and a job that fits still runs.
    @Test(.enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "mounts in a private namespace"))
    func fullDiskIsReported() throws {
        let sandbox = try Sandbox(base: jobsConfig)
        try FileManager.default.createDirectory(atPath: sandbox.state, withIntermediateDirectories: false)
        let daemon = try sandbox.start(launcher: Self.privateMount("mount -t tmpfs -o size=256k,mode=0700 tmpfs \"$0\"", on: sandbox.state))

        let error = try daemon.failure("jobs.submit", ["content": .string(questions(3000, maxTokens: 4)), "now": true])
        #expect(error.code == .internal)
        #expect(error.message.contains("disk full") && error.message.contains(sandbox.state + "/jobs.sqlite3"), "\(error.message)")
        let id = try daemon.submit(questions(1, maxTokens: 2))
        #expect(try daemon.waitUntilFinished(id).state == "completed")
        #expect(daemon.stop() == 0)
    }

    /// `unshare` runs the daemon in a mount namespace of its own, after `mount` (given the state
    /// directory as $0): the host's mounts stay as they were, and the mount goes with the process.
    static func privateMount(_ mount: String, on directory: String) -> [String] {
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", mount + " && exec \"$@\"", directory]
    }
}
