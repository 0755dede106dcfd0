import JobStore
import LookaheadProtocol
import Testing

private func validate(_ text: String, maxBytes: Int = JobInput.defaultMaxBytes) throws(JobInputError) -> [ValidatedLine] {
    try JobInput.validate(jsonl: Array(text.utf8), maxBytes: maxBytes)
}

private func inputError(_ text: String, maxBytes: Int = JobInput.defaultMaxBytes) -> JobInputError? {
    thrown { () throws(JobInputError) in try validate(text, maxBytes: maxBytes) }
}

@Suite struct JobInputTests {
    @Test func acceptsEveryAskParameterAndKeepsTheRequest() throws {
        let lines = try validate(
            #"""
            {"custom_id":"a","prompt":"p1","mode":"lookahead+sd","max_tokens":512.0,"temperature":0.7,"seed":0,"gamma":16,"top_p":1,"top_k":20,"verifier":"judge","width":2}
            {"custom_id":"b","prompt":"p2","mode":null}
            """#)
        #expect(lines.map(\.customID) == ["a", "b"])
        #expect(lines[0].request["custom_id"] == nil)
        #expect(lines[0].request["max_tokens"] == .int(512), "an integral double is stored as the integer")
        #expect(lines[0].request["temperature"] == .double(0.7))
        #expect(lines[0].request.keys == ["prompt", "mode", "max_tokens", "temperature", "seed", "gamma", "top_p", "top_k", "verifier", "width"])
        #expect(lines[1].request == ["prompt": "p2"], "null counts as absent")
    }

    @Test func stopTemplateAndAdaptiveGoOnToTheDaemon() throws {
        let lines = try validate(#"{"custom_id":"a","prompt":"p","stop":["\n\n","END"],"template":false,"adaptive":false}"#)
        #expect(lines[0].request == ["prompt": "p", "stop": ["\n\n", "END"], "template": false, "adaptive": false])
        #expect(inputError(#"{"custom_id":"a","prompt":"p","stops":"x"}"#)?.field == "stops")
    }

    @Test func blankLinesCRLFAndAByteOrderMarkAreAllowed() throws {
        let text = "\u{FEFF}{\"custom_id\":\"a\",\"prompt\":\"x\"}\r\n\r\n   \n{\"custom_id\":\"b\",\"prompt\":\"y\"}\r\n"
        #expect(try validate(text).map(\.customID) == ["a", "b"])
    }

    @Test func invalidJSONNamesTheLine() {
        let error = inputError(#"""
            {"custom_id":"a","prompt":"x"}

            {"custom_id":"b","prompt":"y",}
            """#)
        #expect(error?.line == 3)
        #expect(error?.description.hasPrefix("line 3: invalid JSON") == true, "\(String(describing: error))")
    }

    @Test func invalidUTF8NamesTheLine() {
        var bytes = Array(#"{"custom_id":"a","prompt":"x"}"#.utf8) + [0x0A]
        bytes += Array(#"{"custom_id":"b","prompt":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let error = thrown { () throws(JobInputError) in try JobInput.validate(jsonl: bytes) }
        #expect(error == JobInputError(line: 2, "not valid UTF-8"))
    }

    @Test func duplicateCustomIDNamesBothLines() {
        let error = inputError(#"""
            {"custom_id":"q7","prompt":"x"}
            {"custom_id":"q8","prompt":"y"}
            {"custom_id":"q7","prompt":"z"}
            """#)
        #expect(error == JobInputError(line: 3, field: "custom_id", "duplicate custom_id 'q7' (first on line 1)"))
        #expect(error?.description == "line 3: duplicate custom_id 'q7' (first on line 1)")
    }

    @Test func unknownFieldIsAnError() {
        let error = inputError(#"""
            {"custom_id":"a","prompt":"x"}
            {"custom_id":"b","prompt":"y","max_token":5}
            """#)
        #expect(error == JobInputError(line: 2, field: "max_token", "unknown field 'max_token'"))
    }

    @Test(arguments: ["", "\n", "\n  \n\r\n"])
    func emptyInputIsAnError(_ text: String) {
        #expect(inputError(text) == JobInputError(line: nil, "the input has no lines"))
    }

    @Test func oversizeInputIsRefusedBeforeParsing() {
        // Not JSON at all: the size must be judged first.
        let error = inputError(String(repeating: "x", count: 101), maxBytes: 100)
        #expect(error == JobInputError(line: nil, "the input is 101 bytes, over the limit of 100 bytes"))
        #expect(inputError(#"{"custom_id":"a","prompt":"x"}"#, maxBytes: 30) == nil, "exactly at the limit is fine")
    }

    @Test func aLineMustBeAnObjectWithCustomIDAndPrompt() {
        #expect(inputError("[1]") == JobInputError(line: 1, "a line must be a JSON object, got an array"))
        #expect(inputError(#"{"prompt":"x"}"#) == JobInputError(line: 1, field: "custom_id", "custom_id is required"))
        #expect(inputError(#"{"custom_id":7,"prompt":"x"}"#)
            == JobInputError(line: 1, field: "custom_id", "custom_id must be a string, got the integer 7"))
        #expect(inputError(#"{"custom_id":"","prompt":"x"}"#)
            == JobInputError(line: 1, field: "custom_id", "custom_id must not be empty"))
        #expect(inputError(#"{"custom_id":"a"}"#) == JobInputError(line: 1, field: "prompt", "prompt is required"))
        #expect(inputError(#"{"custom_id":"a","prompt":""}"#)
            == JobInputError(line: 1, field: "prompt", "prompt must not be empty"))
    }

    @Test func aLineMayCarryAConversationInsteadOfAPrompt() throws {
        let text = #"{"custom_id":"a","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"}],"mode":"ar"}"#
        let lines = try validate(text)
        #expect(lines.first?.request["messages"]?.arrayValue?.count == 2 && lines.first?.request["prompt"] == nil)
        #expect(inputError(#"{"custom_id":"a","messages":[{"role":"user","content":"q"},{"role":"bot","content":"a"}]}"#)
            == JobInputError(line: 1, field: "messages[1].role", "messages[1].role must be one of system, user, assistant"))
        #expect(inputError(#"{"custom_id":"a","messages":[{"role":"user","content":"q"}],"prompt":"q"}"#)
            == JobInputError(line: 1, field: "messages", "give prompt or messages, not both"))
        #expect(inputError(#"{"custom_id":"a","messages":"q"}"#)
            == JobInputError(line: 1, field: "messages", "messages must be a non-empty array of {role, content}, got a string"))
    }

    @Test(arguments: [
        (#""mode":"fast""#, "mode", "mode must be one of ar, sd, lookahead, lookahead+sd, got 'fast'"),
        (#""verifier":3"#, "verifier", "verifier must be one of exact, normalized, embedding, judge, got the integer 3"),
        (#""max_tokens":0"#, "max_tokens", "max_tokens must be an integer ≥ 1, got the integer 0"),
        (#""max_tokens":1.5"#, "max_tokens", "max_tokens must be an integer ≥ 1, got the number 1.5"),
        (#""temperature":-0.1"#, "temperature", "temperature must be a number ≥ 0, got the number -0.1"),
        (#""seed":-1"#, "seed", "seed must be an integer ≥ 0, got the integer -1"),
        (#""gamma":17"#, "gamma", "gamma must be an integer from 0 to 16, got the integer 17"),
        (#""gamma":"4""#, "gamma", "gamma must be an integer from 0 to 16, got a string"),
        (#""top_p":0"#, "top_p", "top_p must be a number > 0 and ≤ 1, got the integer 0"),
        (#""top_p":1.01"#, "top_p", "top_p must be a number > 0 and ≤ 1, got the number 1.01"),
        (#""top_k":0"#, "top_k", "top_k must be an integer ≥ 1, got the integer 0"),
        (#""width":3"#, "width", "width must be an integer from 1 to 2, got the integer 3"),
    ])
    func badParametersNameTheLineAndField(_ field: String, _ name: String, _ message: String) {
        let text = "{\"custom_id\":\"ok\",\"prompt\":\"x\"}\n{\"custom_id\":\"bad\",\"prompt\":\"x\",\(field)}"
        #expect(inputError(text) == JobInputError(line: 2, field: name, message))
    }

    @Test func parsedLinesFollowTheSameRules() throws {
        #expect(try JobInput.validate(lines: [["custom_id": "a", "prompt": "x"]]).count == 1)
        let error = thrown { () throws(JobInputError) in
            try JobInput.validate(lines: [["custom_id": "a", "prompt": "x"], ["custom_id": "a", "prompt": "y"]])
        }
        #expect(error?.line == 2)
        #expect(thrown { () throws(JobInputError) in try JobInput.validate(lines: []) }?.line == nil)
    }
}
