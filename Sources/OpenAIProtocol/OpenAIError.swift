import LookaheadProtocol

/// An error as OpenAI's API shapes it (`{"error": {"message", "type", "param", "code"}}`) with
/// the HTTP status that goes with it, so clients written for OpenAI read ours.
public struct OpenAIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, _ message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public static func invalid(_ message: String, param: String?) -> OpenAIError {
        OpenAIError(status: 400, message, type: "invalid_request_error", param: param, code: "invalid_value")
    }

    /// A native error translated; `param` is the OpenAI name of the field it blames.
    public init(_ error: ProtocolError, param: String?) {
        switch error.code {
        case .invalidRequest, .invalidParams:
            self.init(status: 400, error.message, type: "invalid_request_error", param: param, code: "invalid_value")
        case .tooLarge where param == "messages" || param == "prompt":
            self.init(status: 400, error.message, type: "invalid_request_error", param: param, code: "context_length_exceeded")
        case .tooLarge:
            self.init(status: 413, error.message, type: "invalid_request_error", param: param, code: "request_too_large")
        case .unknownMethod, .notFound:
            self.init(status: 404, error.message, type: "not_found_error", param: param, code: "not_found")
        case .forbidden:
            self.init(status: 403, error.message, type: "permission_error", param: param, code: "forbidden")
        case .busy:
            self.init(status: 429, error.message, type: "rate_limit_error", param: nil, code: "busy")
        case .timeout:
            self.init(status: 408, error.message, type: "invalid_request_error", param: nil, code: "timeout")
        case .cancelled:
            self.init(status: 499, error.message, type: "invalid_request_error", param: nil, code: "cancelled")
        case .internal:
            self.init(status: 500, error.message, type: "server_error", param: nil, code: "internal")
        }
    }

    public var json: JSONObject {
        ["error": .object([
            "message": .string(message), "type": .string(type),
            "param": param.map(JSONValue.string) ?? .null, "code": code.map(JSONValue.string) ?? .null,
        ])]
    }

    public var description: String { "\(status) \(type): \(message)" }
}
