import LookaheadProtocol
import OpenAIProtocol

/// How a job's lines are written, and so how its results read back. A job is one or the other.
/// The raw values are the stored and wire spellings.
public enum JobFormat: String, Sendable, Hashable, CaseIterable {
    /// `{"custom_id", "prompt" | "messages", …}` with `ask`'s parameters; results are the
    /// `jobs.results` line objects of docs/protocol.md.
    case native
    /// OpenAI's Batch input, `{"custom_id", "method": "POST", "url", "body"}`; results are OpenAI's
    /// Batch output lines (`OpenAIBatch.outputLine`), so files made for OpenAI's or vLLM's batch
    /// runners work unchanged.
    case openAI = "openai"
}

/// A line's request as the engine runs it: the `ask` params it amounts to, and for an OpenAI line
/// the parsed request, which shapes the answer and names fields in OpenAI's terms. Built from the
/// stored request at submission and again when the line runs, by the same translation
/// (`CompletionRequest`), so the two cannot disagree.
public struct LineAsk: Sendable {
    public let params: Params
    /// nil for a native line.
    public let openAI: CompletionRequest?

    /// `request` as stored: the `ask` params of a native line, `{"url", "body"}` of an OpenAI one.
    /// A body that does not translate is an error blaming `body.<param>`, without a line number.
    public init(format: JobFormat, request: JSONObject) throws(JobInputError) {
        switch format {
        case .native:
            params = Params(request)
            openAI = nil
        case .openAI:
            guard let url = request["url"]?.stringValue, let endpoint = Endpoint(rawValue: url) else {
                throw JobInputError(line: nil, field: "url", "url must be one of \(OpenAIBatch.urls), got \(request["url"] ?? .null)")
            }
            guard let body = request["body"]?.objectValue else {
                throw JobInputError(line: nil, field: "body", "body must be an object, got \((request["body"] ?? .null).kind)")
            }
            let completion: CompletionRequest
            do {
                completion = try CompletionRequest(endpoint, body: body)
            } catch {
                throw Self.bodyError(error.message, param: error.param)
            }
            // A batch line's answer is stored whole, after the line ends; there is no one to stream to.
            guard !completion.stream else {
                throw Self.bodyError("stream must be false or absent in a batch line: its answer is stored whole", param: "stream")
            }
            params = completion.ask
            openAI = completion
        }
    }

    /// The name a native check's field has in this line's results: the field itself, or the
    /// OpenAI parameter it came from (`max_completion_tokens`, `lookahead.gamma`, `messages`).
    public func field(forNative field: String?) -> String? {
        openAI.map { $0.param(forNative: field) } ?? field
    }

    /// A native check's complaint about this line, in the line's own terms: as it is for a
    /// native line; for an OpenAI line `body: …`, blaming `body.<param>`.
    public func lineError(_ message: String, field native: String?) -> JobInputError {
        guard openAI != nil else { return JobInputError(line: nil, field: native, message) }
        return Self.bodyError(message, param: field(forNative: native))
    }

    private static func bodyError(_ message: String, param: String?) -> JobInputError {
        JobInputError(line: nil, field: param.map { "body." + $0 } ?? "body", "body: " + message)
    }
}

/// OpenAI's Batch format: the input line's envelope and the output lines.
public enum OpenAIBatch {
    /// The keys of an input line; a line with any of the last three is an OpenAI line.
    static let keys: Set<String> = ["custom_id", "method", "url", "body"]
    static let markers = ["method", "url", "body"]
    static let urls = Endpoint.allCases.map(\.rawValue).joined(separator: ", ")

    /// OpenAI's output line for a line that has ended; nil for one still queued or running (an
    /// OpenAI output file lists only requests that ended). An answer, or a failure the request
    /// met (as the HTTP API would have answered it), is a `response` with its status code and
    /// `error` null; a line that never ran (the job was cancelled, its deadline passed) has
    /// `response` null and `error` `batch_cancelled` / `batch_expired`, as OpenAI writes them.
    /// The ids are derived from the job and the line, so reading results twice gives the same file.
    public static func outputLine(_ line: LineResult, jobID: String) -> JSONObject? {
        let suffix = (jobID.hasPrefix("job_") ? String(jobID.dropFirst(4)) : jobID) + hex8(line.lineNo)
        var response = JSONValue.null
        var error = JSONValue.null
        switch line.state {
        case .queued, .inProgress:
            return nil
        case .done:
            response = Self.response(status: 200, body: line.result ?? .null, suffix: suffix)
        case .failed:
            let native = nativeError(line.error)
            let failure = OpenAIError(native, param: native.field)
            response = Self.response(status: failure.status, body: .object(failure.json), suffix: suffix)
        case .cancelled:
            error = ["code": "batch_cancelled", "message": .string(nativeError(line.error).message)]
        case .expired:
            error = ["code": "batch_expired", "message": .string(nativeError(line.error).message)]
        }
        return ["id": .string("batch_req_" + suffix), "custom_id": .string(line.customID), "response": response, "error": error]
    }

    private static func response(status: Int, body: JSONValue, suffix: String) -> JSONValue {
        ["status_code": JSONValue(status), "request_id": .string("req_" + suffix), "body": body]
    }

    /// The stored error object; every error the store keeps was written as a `ProtocolError`.
    private static func nativeError(_ value: JSONValue?) -> ProtocolError {
        guard let object = value?.objectValue, let error = try? ProtocolError(json: object) else {
            return ProtocolError(.internal, "the line ended without a readable error")
        }
        return error
    }

    private static func hex8(_ n: Int) -> String {
        let s = String(n, radix: 16)
        return String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}
