import Testing
@testable import LookaheadProtocol

/// Through the wire and back: encode, frame, unframe, decode.
private func wire(_ json: JSONObject) throws -> JSONObject {
    var decoder = FrameDecoder()
    decoder.feed(try FrameEncoder().encode(json))
    return try JSONCodec.decodeObject(try #require(try decoder.next()))
}

private func requestError(_ text: String) -> ProtocolError? {
    do {
        _ = try Request(json: JSONCodec.decodeObject(Array(text.utf8)))
        return nil
    } catch {
        return error
    }
}

private func paramsError(_ params: Params, _ read: (Params) throws -> Void) -> ProtocolError? {
    do {
        try read(params)
        return nil
    } catch {
        return error as? ProtocolError
    }
}

private enum Mode: String, CaseIterable { case ar, sd, lookahead, lookaheadSD = "lookahead+sd" }

@Suite struct MessageTests {
    @Test func errorCodesAreExactlyTheVocabulary() {
        #expect(ErrorCode.allCases.map(\.rawValue) == [
            "invalid_request", "unknown_method", "invalid_params", "too_large", "not_found", "forbidden", "busy",
            "cancelled", "timeout", "internal",
        ])
    }

    @Test func requestRoundTrips() throws {
        let request = Request(id: "a1", method: "ask", params: ["prompt": "2+2? ünï", "gamma": 4, "temperature": 0.7])
        #expect(try Request(json: wire(request.json)) == request)
        let numbered = Request(id: 9_007_199_254_740_993, method: "status")
        #expect(try Request(json: wire(numbered.json)) == numbered)
        #expect(String(decoding: JSONCodec.encode(.object(request.json)), as: UTF8.self)
            == #"{"id":"a1","method":"ask","params":{"prompt":"2+2? ünï","gamma":4,"temperature":0.7}}"#)
    }

    @Test func eventRoundTripsWithItsFieldsBesideIdAndEvent() throws {
        let event = Event(id: 7, event: "step", data: ["text": "Natalia sold… ✓\n\n", "phase": "thinking", "from_draft": true])
        #expect(event.json == ["id": 7, "event": "step", "text": "Natalia sold… ✓\n\n", "phase": "thinking", "from_draft": true])
        let back = try ServerMessage(json: wire(event.json))
        #expect(back == .event(event))
        #expect(back.id == 7)
        #expect(!back.isFinal)
    }

    @Test func resultRoundTrips() throws {
        let result = ResultReply(id: "r", result: [
            "text": "<think>\n48/2 = 24\n</think>\n72", "answer": "72", "tokens": 31, "finish_reason": "stop",
            "stats": ["alpha": 0.7, "c": 0.35, "committed_steps": 5, "proposers": ["ngram": ["proposed": 12]]],
        ])
        let back = try ServerMessage(json: wire(result.json))
        #expect(back == .result(result))
        #expect(back.isFinal)
        let nullResult = ResultReply(id: 1, result: .null)
        #expect(try ServerMessage(json: wire(nullResult.json)) == .result(nullResult))
    }

    @Test func errorReplyRoundTripsWithAndWithoutIdAndField() throws {
        let withField = ErrorReply(id: 3, error: ProtocolError(.invalidParams, "gamma must be 0...16, got 40", field: "gamma"))
        #expect(withField.json == ["id": 3, "error": ["code": "invalid_params", "message": "gamma must be 0...16, got 40", "field": "gamma"]])
        #expect(try ServerMessage(json: wire(withField.json)) == .error(withField))

        let noID = ErrorReply(id: nil, error: ProtocolError(.tooLarge, "frame too large"))
        #expect(noID.json == ["error": ["code": "too_large", "message": "frame too large"]])
        let back = try ServerMessage(json: wire(noID.json))
        #expect(back == .error(noID))
        #expect(back.id == nil)
        #expect(back.isFinal)
        #expect(try ErrorReply(json: ["id": .null, "error": ["code": "busy", "message": "m"]]).id == nil)
    }

    @Test func everyErrorCodeRoundTrips() throws {
        for code in ErrorCode.allCases {
            let reply = ErrorReply(id: "x", error: ProtocolError(code, "because"))
            #expect(try ErrorReply(json: wire(reply.json)) == reply)
        }
    }

    @Test func serverMessagesThatAreNoneOrSeveralKindsAreRefused() {
        #expect(throws: ProtocolError.self) { try ServerMessage(json: ["id": 1]) }
        #expect(throws: ProtocolError.self) { try ServerMessage(json: ["id": 1, "result": 1, "error": ["code": "busy", "message": "m"]]) }
        let unknown = try? #require(throws: ProtocolError.self) {
            try ServerMessage(json: ["id": 1, "error": ["code": "teapot", "message": "m"]])
        }
        #expect(unknown?.field == "error.code")
        let noMessage = try? #require(throws: ProtocolError.self) {
            try ServerMessage(json: ["id": 1, "error": ["code": "busy"]])
        }
        #expect(noMessage?.field == "error.message")
        #expect(noMessage?.message == "error.message is required")
    }

    @Test func requestParamsDefaultToEmpty() throws {
        #expect(try Request(json: ["id": 1, "method": "status"]).params == [:])
        #expect(try Request(json: ["id": 1, "method": "status", "params": .null]).params == [:])
    }

    @Test(arguments: [
        (#"{"method": "ask"}"#, "id", "id is required"),
        (#"{"id": 1.5, "method": "ask"}"#, "id", "id must be a string or an integer, got the number 1.5"),
        (#"{"id": null, "method": "ask"}"#, "id", "id must be a string or an integer, got null"),
        (#"{"id": [1], "method": "ask"}"#, "id", "id must be a string or an integer, got an array"),
        (#"{"id": 1}"#, "method", "method is required"),
        (#"{"id": 1, "method": 5}"#, "method", "method must be a string, got the integer 5"),
        (#"{"id": 1, "method": ""}"#, "method", "method must not be empty"),
        (#"{"id": 1, "method": "ask", "params": [1]}"#, "params", "params must be an object, got an array"),
        (#"{"id": 1, "method": "ask", "params": "x"}"#, "params", "params must be an object, got a string"),
        (#"{"id": 1, "method": "ask", "prompt": "x"}"#, "prompt", "unexpected field prompt (parameters go in params)"),
    ])
    func requestValidationNamesTheField(_ input: String, _ field: String, _ message: String) throws {
        let error = try #require(requestError(input))
        #expect(error.code == .invalidRequest)
        #expect(error.field == field)
        #expect(error.message == message)
    }

    @Test func errorReplyToABadRequestKeepsAUsableId() {
        let error = ProtocolError(.invalidRequest, "method is required", field: "method")
        #expect(ErrorReply(replyingTo: ["id": "q"], error: error).id == "q")
        #expect(ErrorReply(replyingTo: ["id": 2.5], error: error).id == nil)
        #expect(ErrorReply(replyingTo: [:], error: error).id == nil)
    }

    @Test func typedParamsReadTheirTypes() throws {
        let params: Params = [
            "prompt": "hi", "max_tokens": 512, "float_count": 64.0, "temperature": 0.6, "gamma": 4, "stream": true,
            "mode": "lookahead+sd", "seed": .null,
        ]
        #expect(try params.string("prompt") == "hi")
        #expect(try params.int("max_tokens") == 512)
        #expect(try params.int("float_count") == 64)
        #expect(try params.double("temperature") == 0.6)
        #expect(try params.double("gamma") == 4)
        #expect(try params.bool("stream"))
        #expect(try params.optionalChoice("mode", as: Mode.self) == .lookaheadSD)
        #expect(try params.optionalInt("seed") == nil)
        #expect(try params.optionalString("absent") == nil)
        #expect(try params.optionalDouble("absent") == nil)
        #expect(try params.optionalBool("absent") == nil)
        #expect(try params.optionalChoice("absent", as: Mode.self) == nil)
        #expect(params["seed"] == nil)
        #expect(params["gamma"] == 4)
    }

    @Test func missingRequiredParamsNameTheField() throws {
        let params: Params = ["seed": .null]
        for (key, read) in [
            ("prompt", { (p: Params) in _ = try p.string("prompt") }),
            ("max_tokens", { (p: Params) in _ = try p.int("max_tokens") }),
            ("top_p", { (p: Params) in _ = try p.double("top_p") }),
            ("seed", { (p: Params) in _ = try p.bool("seed") }),
        ] {
            let error = try #require(paramsError(params, read))
            #expect(error == ProtocolError(.invalidParams, "\(key) is required", field: key))
        }
    }

    @Test func wrongParamTypesNameFieldAndExpectedType() throws {
        let params: Params = ["prompt": 3, "max_tokens": 0.5, "big": 1e30, "top_p": "high", "stream": 1, "mode": "fast", "name": ["x"]]
        let cases: [(String, (Params) throws -> Void, String)] = [
            ("prompt", { p in _ = try p.optionalString("prompt") }, "prompt must be a string, got the integer 3"),
            ("max_tokens", { p in _ = try p.int("max_tokens") }, "max_tokens must be an integer, got the number 0.5"),
            ("big", { p in _ = try p.optionalInt("big") }, "big must be an integer, got the number 1e+30"),
            ("top_p", { p in _ = try p.double("top_p") }, "top_p must be a number, got a string"),
            ("stream", { p in _ = try p.bool("stream") }, "stream must be a boolean, got the integer 1"),
            ("mode", { p in _ = try p.optionalChoice("mode", as: Mode.self) },
             "mode must be one of ar, sd, lookahead, lookahead+sd, got 'fast'"),
            ("name", { p in _ = try p.string("name") }, "name must be a string, got an array"),
        ]
        for (field, read, message) in cases {
            let error = try #require(paramsError(params, read))
            #expect(error == ProtocolError(.invalidParams, message, field: field))
        }
    }

    @Test func unknownParamsAreNamed() throws {
        let params: Params = ["prompt": "x", "max_token": 5]
        let error = try #require(paramsError(params) { try $0.rejectUnknown(allowed: ["prompt", "max_tokens"]) })
        #expect(error == ProtocolError(.invalidParams, "unknown parameter max_token", field: "max_token"))
        #expect(paramsError(params) { try $0.rejectUnknown(allowed: ["prompt", "max_token"]) } == nil)
    }

    @Test func protocolErrorDescriptionLeadsWithTheCode() {
        #expect(ProtocolError(.notFound, "no job j1", field: "job").description == "not_found: no job j1")
    }
}
