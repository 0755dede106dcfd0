import JobStore
import LookaheadProtocol
import OpenAIProtocol
import Testing
import TestSupport

private let alice: UInt32 = 1000

private func validate(_ text: String) throws(JobInputError) -> [ValidatedLine] {
    try JobInput.validate(jsonl: Array(text.utf8))
}

private func inputError(_ text: String) -> JobInputError? {
    thrown { () throws(JobInputError) in try validate(text) }
}

/// An OpenAI Batch line for the chat endpoint, `body` spliced in as JSON text.
private func chatLine(_ id: String, body: String = #""messages":[{"role":"user","content":"2+2?"}],"max_tokens":8"#) -> String {
    #"{"custom_id":"\#(id)","method":"POST","url":"/v1/chat/completions","body":{\#(body)}}"#
}

@Suite struct OpenAIBatchTests {
    @Test func aFileOfOpenAILinesIsAnOpenAIJob() throws {
        let text = chatLine("c1", body: #""model":"anything","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":"2+2?"}],"max_completion_tokens":12,"lookahead":{"mode":"ar"}"#)
            + "\n\n"
            + #"{"custom_id":"t1","method":"POST","url":"/v1/completions","body":{"prompt":"Once upon","max_tokens":4,"stop":"\n"}}"#
            + "\r\n" + chatLine("c2", body: #""messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":false"#)
        let lines = try validate(text)
        #expect(lines.map(\.customID) == ["c1", "t1", "c2"])
        #expect(lines.map(\.line) == [1, 3, 4])
        #expect(lines.allSatisfy { $0.format == .openAI })
        // Stored as given, so the daemon translates it again, by the same code, when the line runs.
        #expect(lines[1].request == ["url": "/v1/completions", "body": ["prompt": "Once upon", "max_tokens": 4, "stop": "\n"]])

        let chat = try lines[0].ask()
        #expect(chat.openAI?.endpoint == .chat)
        #expect(chat.params["messages"] == [["role": "system", "content": "Be brief."], ["role": "user", "content": "2+2?"]])
        #expect(chat.params["max_tokens"] == 12 && chat.params["mode"] == "ar" && chat.params["prompt"] == nil)
        #expect(chat.field(forNative: "max_tokens") == "max_completion_tokens")
        #expect(chat.field(forNative: "gamma") == "lookahead.gamma")
        let completion = try lines[1].ask()
        #expect(completion.params == ["prompt": "Once upon", "template": false, "max_tokens": 4, "stop": "\n"])
        #expect(completion.field(forNative: "prompt") == "prompt")
    }

    @Test func aNativeLineAsksAsItIs() throws {
        let line = try #require(try validate(#"{"custom_id":"a","prompt":"x","max_tokens":4}"#).first)
        #expect(line.format == .native)
        let ask = try line.ask()
        #expect(ask.params == ["prompt": "x", "max_tokens": 4] && ask.openAI == nil)
        #expect(ask.field(forNative: "max_tokens") == "max_tokens")
        #expect(ask.lineError("max_tokens must be in 1...64, got 99", field: "max_tokens")
            == JobInputError(line: nil, field: "max_tokens", "max_tokens must be in 1...64, got 99"))
    }

    @Test func aJobIsOneFormat() {
        let native = #"{"custom_id":"n1","prompt":"x"}"#
        let openAIAfterNative = inputError(native + "\n" + chatLine("o1"))
        #expect(openAIAfterNative == JobInputError(line: 2,
            "an OpenAI Batch line {custom_id, method, url, body} in a job whose line 1 is a native line {custom_id, prompt or messages, …}; a job's lines are all in one format"))
        let nativeAfterOpenAI = inputError(chatLine("o1") + "\n\n" + native)
        #expect(nativeAfterOpenAI?.line == 3 && nativeAfterOpenAI?.field == nil)
        #expect(nativeAfterOpenAI?.description.hasPrefix("line 3: a native line {custom_id, prompt or messages, …} in a job whose line 1 is an OpenAI") == true)
        // One OpenAI field is enough to make a line an OpenAI line, and then it must be a whole one.
        #expect(inputError(#"{"custom_id":"n1","prompt":"x","url":"/v1/completions"}"#)
            == JobInputError(line: 1, field: "prompt", "unknown field 'prompt' (an OpenAI Batch line has custom_id, method, url and body)"))
    }

    @Test(arguments: [
        (#"{"custom_id":"b","url":"/v1/chat/completions","body":{}}"#, "method", "method is required"),
        (#"{"custom_id":"b","method":"GET","url":"/v1/chat/completions","body":{}}"#, "method", "method must be POST, got 'GET'"),
        (#"{"custom_id":"b","method":"POST","body":{}}"#, "url", "url is required"),
        (#"{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}"#, "url",
         "url must be one of /v1/chat/completions, /v1/completions, got '/v1/embeddings'"),
        (#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions"}"#, "body", "body is required"),
        (#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":"hi"}"#, "body", "body must be an object, got a string"),
        (#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#, "custom_id", "custom_id is required"),
    ])
    func aBadEnvelopeNamesTheLineAndField(_ bad: String, _ field: String, _ message: String) {
        #expect(inputError(chatLine("ok") + "\n" + bad) == JobInputError(line: 2, field: field, message))
    }

    @Test(arguments: [
        (#""messages":[{"role":"robot","content":"x"}]"#, "body.messages[0].role",
         "body: messages[0].role 'robot' is not one of system, developer, user, assistant"),
        (#""messages":[{"role":"user","content":"x"}],"stream":true"#, "body.stream",
         "body: stream must be false or absent in a batch line: its answer is stored whole"),
        (#""messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}"#, "body.stream_options",
         "body: stream_options is only allowed when stream is true"),
        (#""messages":[{"role":"user","content":"x"}],"functions":[]"#, "body.functions",
         "body: unrecognized request argument supplied: functions"),
        (#""max_tokens":4"#, "body.messages", "body: messages is required"),
        (#""messages":[{"role":"user","content":"x"}],"max_completion_tokens":0"#, "body.max_completion_tokens",
         "body: max_completion_tokens must be an integer ≥ 1, got the integer 0"),
        (#""messages":[{"role":"user","content":"x"}],"temperature":-1"#, "body.temperature",
         "body: temperature must be a number ≥ 0, got the integer -1"),
        (#""messages":[{"role":"user","content":"x"}],"lookahead":{"gamma":17}"#, "body.lookahead.gamma",
         "body: lookahead.gamma must be an integer from 0 to 16, got the integer 17"),
        (#""messages":[{"role":"user","content":"x"}],"model":7"#, "body.model", "body: model must be a string, got the integer 7"),
        (#""messages":[{"role":"user","content":"x"}],"n":2"#, "body.n", "body: n = 2 is not supported here; leave it out or send its default"),
    ])
    func aBadBodyNamesTheLineAndTheBodyField(_ body: String, _ field: String, _ message: String) {
        #expect(inputError(chatLine("ok") + "\n" + chatLine("bad", body: body)) == JobInputError(line: 2, field: field, message))
    }

    @Test func theStoreKeepsTheFormatAndHandsItOut() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let store = try JobStore(directory: dir.path)
        let openAI = try store.submit(owner: alice, lines: try validate(chatLine("c1")), runNow: true, deadline: nil, now: t0).job
        let native = try store.submit(owner: alice, lines: try validLines(1), runNow: true, deadline: nil, now: t0 + 1).job
        #expect(openAI.format == .openAI && native.format == .native)
        #expect(try store.job(id: openAI.id, requester: alice).format == .openAI)
        let claimed = try store.claimLines(limit: 2, now: t0 + 2, windowOpen: true)
        #expect(claimed.map(\.format) == [.openAI, .native])
        #expect(try claimed[0].ask().params["max_tokens"] == 8)
        #expect(try claimed[1].ask().params == ["prompt": "prompt 1", "max_tokens": 16])
        // Lines validated apart cannot be stored as one job of two formats.
        let mixed = try validate(chatLine("x")) + (try validLines(1))
        #expect(thrown { () throws(JobStoreError) in
            try store.submit(owner: alice, lines: mixed, runNow: true, deadline: nil, now: t0 + 3)
        } == .invalidSubmission("the lines mix formats (openai and native): a job is one format"))
    }

    /// Every way a line can end, read back as OpenAI's Batch output lines.
    @Test func outputLinesHaveOpenAIsShape() throws {
        let dir = try TempDir("jobstore-test")
        defer { dir.remove() }
        let store = try JobStore(directory: dir.path)
        let text = (1...4).map { chatLine("r\($0)") }.joined(separator: "\n")
        let job = try store.submit(owner: alice, lines: try validate(text), runNow: true, deadline: nil, now: t0).job
        let claimed = try store.claimLines(limit: 2, now: t0 + 1, windowOpen: true)
        #expect(claimed.count == 2)
        let body: JSONValue = ["id": "chatcmpl-1", "object": "chat.completion", "choices": [], "usage": ["prompt_tokens": 5]]
        try store.complete(jobID: job.id, lineNo: 1, result: body, now: t0 + 2)
        try store.fail(jobID: job.id, lineNo: 2, error: .object(ProtocolError(.invalidParams, "too many", field: "max_completion_tokens").json), now: t0 + 3)
        _ = try store.claimLines(limit: 1, now: t0 + 4, windowOpen: true)
        _ = try store.cancel(jobID: job.id, requester: alice, now: t0 + 5)   // line 3 in flight, line 4 queued

        let results = try store.results(id: job.id, requester: alice)
        let out = results.map { OpenAIBatch.outputLine($0, jobID: job.id) }
        let hex = String(job.id.dropFirst(4))
        #expect(out[0] == ["id": .string("batch_req_\(hex)00000001"), "custom_id": "r1", "error": .null,
                           "response": ["status_code": 200, "request_id": .string("req_\(hex)00000001"), "body": body]])
        #expect(out[1] == ["id": .string("batch_req_\(hex)00000002"), "custom_id": "r2", "error": .null,
                           "response": ["status_code": 400, "request_id": .string("req_\(hex)00000002"), "body": ["error": [
                               "message": "too many", "type": "invalid_request_error", "param": "max_completion_tokens", "code": "invalid_value",
                           ]]]])
        #expect(out[2] == nil, "a line still running is not in OpenAI's output")
        #expect(out[3]?["response"] == .null)
        #expect(out[3]?["error"] == ["code": "batch_cancelled", "message": "the job was cancelled before this line ran"])
        #expect(results.map { OpenAIBatch.outputLine($0, jobID: job.id) } == out, "the same ids every time")

        let late = try store.submit(owner: alice, lines: try validate(chatLine("e1")), runNow: false, deadline: t0 + 20, now: t0 + 10).job
        #expect(try store.expireOverdue(now: t0 + 30) == 1)
        let expired = try #require(try store.results(id: late.id, requester: alice).first)
        #expect(OpenAIBatch.outputLine(expired, jobID: late.id)?["error"]
            == ["code": "batch_expired", "message": "the job's deadline passed before this line ran"])
    }
}
