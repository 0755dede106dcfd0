import LookaheadProtocol
import Testing
@testable import OpenAIProtocol

private func body(_ text: String) throws -> JSONObject { try JSONCodec.decodeObject(Array(text.utf8)) }

private func refusal(_ endpoint: Endpoint = .chat, _ text: String) throws -> OpenAIError? {
    let object = try body(text)
    do {
        _ = try CompletionRequest(endpoint, body: object)
        return nil
    } catch {
        return error
    }
}

private func splitInPieces(_ pieces: [String]) -> (reasoning: String, content: String, thinks: Bool) {
    var s = ReasoningSplitter()
    var r = "", c = ""
    for p in pieces {
        let d = s.feed(p)
        r += d.reasoning
        c += d.content
    }
    let d = s.finish()
    return (r + d.reasoning, c + d.content, s.thinks)
}

@Suite struct ReasoningSplitterTests {
    @Test func thinkingGoesToReasoningAndTheRestToContent() {
        let (reasoning, content) = ReasoningSplitter.split("<think>\nFirst, 3 + 4 = 7.\n\nSo 7.\n</think>\n\nThe answer is 7.")
        #expect(reasoning == "First, 3 + 4 = 7.\n\nSo 7.")
        #expect(content == "The answer is 7.")
    }

    @Test func aModelThatDoesNotThinkHasNoReasoning() {
        let (reasoning, content) = ReasoningSplitter.split("  The answer is 7.\n")
        #expect(reasoning == nil)
        #expect(content == "The answer is 7.")
    }

    @Test func thinkingCutShortByTheLengthStaysReasoning() {
        let (reasoning, content) = ReasoningSplitter.split("<think>\nLet me count: 1, 2, 3")
        #expect(reasoning == "Let me count: 1, 2, 3")
        #expect(content == "")
    }

    /// Streamed in any pieces, even through the middle of a tag or of a run of blanks, the parts
    /// add up to the split of the whole text.
    @Test func anyCutOfTheStreamGivesTheWholeTextsSplit() {
        let texts = ["<think>\nOkay.\n\nThen 2 + 2 = 4.\n</think>\n\nIt is **4**.\n\nDone.  ",
                     "\n<think></think>\n\nJust this.", "No thinking at all,\n\njust text.", "<thin", "<think>x</thin"]
        for text in texts {
            let whole = ReasoningSplitter.split(text)
            let bytes = Array(text.utf8)
            for cut1 in 0...bytes.count {
                for cut2 in cut1...bytes.count {
                    let pieces = [bytes[..<cut1], bytes[cut1..<cut2], bytes[cut2...]].map { String(decoding: $0, as: UTF8.self) }
                    let streamed = splitInPieces(pieces)
                    #expect(streamed.reasoning == (whole.reasoning ?? ""), "\(text.debugDescription) cut at \(cut1), \(cut2)")
                    #expect(streamed.content == whole.content, "\(text.debugDescription) cut at \(cut1), \(cut2)")
                    #expect(streamed.thinks == (whole.reasoning != nil))
                }
            }
        }
    }

    @Test func blanksInsideAPartAreKeptAndOnlyItsEndsTrimmed() {
        let streamed = splitInPieces(["<think>a", "\n\n", "\n", "b\n", "</think>", "\n\nc ", " d\n"])
        #expect(streamed.reasoning == "a\n\n\nb")
        #expect(streamed.content == "c  d")
    }
}

@Suite struct CompletionRequestTests {
    @Test func aChatBodyBecomesTheNativeAsk() throws {
        let r = try CompletionRequest(.chat, body: try body("""
            {"model": "m", "messages": [{"role": "developer", "content": "Be brief."},
                                        {"role": "user", "content": [{"type": "text", "text": "2+2"}, {"type": "text", "text": "?"}]}],
             "max_completion_tokens": 64, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["\\n\\n"],
             "stream": true, "stream_options": {"include_usage": true}, "n": 1, "user": "u1",
             "lookahead": {"mode": "lookahead", "gamma": 3}}
            """))
        #expect(r.model == "m")
        #expect(r.stream && r.includeUsage)
        #expect(r.ask["messages"] == .array([.object(["role": "system", "content": "Be brief."]), .object(["role": "user", "content": "2+2?"])]))
        #expect(r.ask["max_tokens"] == .int(64))
        #expect(r.ask["temperature"] == .double(0.5))
        #expect(r.ask["stop"] == .array(["\n\n"]))
        #expect(r.ask["mode"] == "lookahead" && r.ask["gamma"] == .int(3))
        #expect(r.ask["template"] == nil && r.ask["user"] == nil && r.ask["n"] == nil)
        #expect(r.param(forNative: "max_tokens") == "max_completion_tokens")
        #expect(r.param(forNative: "gamma") == "lookahead.gamma")
        #expect(r.param(forNative: "prompt") == "messages")
        #expect(r.param(forNative: "messages[1].role") == "messages[1].role")
    }

    @Test func aCompletionBodyTakesThePromptWithoutTheTemplate() throws {
        let r = try CompletionRequest(.completion, body: try body(#"{"prompt": ["Once upon"], "max_tokens": 8}"#))
        #expect(r.ask["prompt"] == "Once upon" && r.ask["template"] == .bool(false) && r.ask["max_tokens"] == .int(8))
        #expect(!r.stream && r.model == nil)
    }

    @Test func whatCannotBeHonouredIsRefusedByName() throws {
        let cases: [(Endpoint, String, String)] = [
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "n": 2}"#, "n"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "logprobs": true}"#, "logprobs"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 0.5}"#, "frequency_penalty"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "functions": []}"#, "functions"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}"#, "response_format"),
            (.chat, #"{"messages": [{"role": "tool", "content": "hi"}]}"#, "messages[0].role"),
            (.chat, #"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}"#, "messages[0].content[0]"),
            (.chat, #"{"messages": [{"role": "assistant", "content": null, "tool_calls": []}]}"#, "messages[0].tool_calls"),
            (.chat, #"{"messages": "hi"}"#, "messages"),
            (.chat, #"{}"#, "messages"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}"#, "stream_options"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "lookahead": {"beam": 2}}"#, "lookahead.beam"),
            (.chat, #"{"messages": [{"role": "user", "content": "hi"}], "model": 3}"#, "model"),
            (.completion, #"{"prompt": ["a", "b"]}"#, "prompt"),
            (.completion, #"{"messages": []}"#, "messages"),
        ]
        for (endpoint, text, param) in cases {
            let e = try #require(try refusal(endpoint, text), "accepted: \(text)")
            #expect(e.status == 400 && e.type == "invalid_request_error")
            #expect(e.param == param, "\(text): blamed \(e.param ?? "nothing")")
        }
    }

    @Test func nativeErrorsMapToOpenAIStatuses() {
        #expect(OpenAIError(ProtocolError(.invalidParams, "x", field: "top_p"), param: "top_p").status == 400)
        let long = OpenAIError(ProtocolError(.tooLarge, "too long", field: "messages"), param: "messages")
        #expect(long.status == 400 && long.code == "context_length_exceeded")
        #expect(OpenAIError(ProtocolError(.tooLarge, "frame"), param: nil).status == 413)
        #expect(OpenAIError(ProtocolError(.busy, "full"), param: nil).status == 429)
        #expect(OpenAIError(ProtocolError(.internal, "boom"), param: nil).type == "server_error")
        let json = OpenAIError.invalid("bad", param: "seed").json
        #expect(json["error"]?.objectValue?["param"] == "seed")
        #expect(json["error"]?.objectValue?["code"] == "invalid_value")
    }
}

@Suite struct ResponseTests {
    let result = AskResult(text: "<think>\nsum\n</think>\n\n4", thinking: "sum", answer: "4", tokens: 9,
                           promptTokens: 11, cachedTokens: 7, finishReason: "context", mode: "lookahead", stats: AskStats())

    @Test func aChatAnswerCarriesReasoningUsageAndStats() {
        let b = CompletionResponder(endpoint: .chat, model: "m", created: 5, id: "chatcmpl-1").body(result)
        #expect(b["object"] == "chat.completion" && b["id"] == "chatcmpl-1" && b["created"] == .int(5))
        let choice = b["choices"]?.arrayValue?.first?.objectValue
        #expect(choice?["finish_reason"] == "length")
        #expect(choice?["message"]?.objectValue?["content"] == "4")
        #expect(choice?["message"]?.objectValue?["reasoning_content"] == "sum")
        #expect(b["usage"] == .object(["prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20,
                                       "prompt_tokens_details": .object(["cached_tokens": 7])]))
        #expect(b["lookahead"]?.objectValue?["mode"] == "lookahead")
    }

    @Test func chunksFollowOpenAIsStreamShape() throws {
        let r = CompletionResponder(endpoint: .chat, model: "m", created: 5)
        #expect(r.id.hasPrefix("chatcmpl-") && r.id.count == 9 + 24)
        let first = try #require(r.roleChunk())
        #expect(first["object"] == "chat.completion.chunk")
        #expect(first["choices"]?.arrayValue?.first?.objectValue?["delta"] == .object(["role": "assistant", "content": ""]))
        #expect(r.textChunk(.init()) == nil)
        let delta = try #require(r.textChunk(.init(reasoning: "r", content: "c")))
        #expect(delta["choices"]?.arrayValue?.first?.objectValue?["delta"] == .object(["reasoning_content": "r", "content": "c"]))
        #expect(r.finalChunk(result)["choices"]?.arrayValue?.first?.objectValue?["finish_reason"] == "length")
        let usage = r.usageChunk(result)
        #expect(usage["choices"] == .array([]) && usage["usage"]?.objectValue?["total_tokens"] == .int(20))
        let text = CompletionResponder(endpoint: .completion, model: "m", created: 5)
        #expect(text.roleChunk() == nil)
        #expect(text.textChunk(.init(content: "x"))?["choices"]?.arrayValue?.first?.objectValue?["text"] == "x")
        #expect(text.body(result)["choices"]?.arrayValue?.first?.objectValue?["text"] == .string(result.text))
    }
}
