/// The error vocabulary: stable strings a client can switch on, in the style of varlink's errors.
/// docs/protocol.md says when each is used.
public enum ErrorCode: String, Sendable, Hashable, CaseIterable {
    case invalidRequest = "invalid_request"
    case unknownMethod = "unknown_method"
    case invalidParams = "invalid_params"
    case tooLarge = "too_large"
    case notFound = "not_found"
    case forbidden
    case busy
    case cancelled
    case timeout
    case `internal`
}

/// An error as the protocol carries it: the body of an error reply. Everything in this module
/// that fails throws one, so the daemon can answer with what it caught.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: ErrorCode
    /// A sentence for people; it names the field too, so it reads alone.
    public var message: String
    /// The parameter or envelope field at fault, for programs.
    public var field: String?

    /// Longest `message` and `field` sent: both may quote what a client sent (an unknown key, a
    /// method name), and an error must stay small whatever the request was.
    public static let maxMessageBytes = 1024
    public static let maxFieldBytes = 128

    public init(_ code: ErrorCode, _ message: String, field: String? = nil) {
        self.code = code
        self.message = Self.clamped(message, to: Self.maxMessageBytes)
        self.field = field.map { Self.clamped($0, to: Self.maxFieldBytes) }
    }

    /// `text` cut to at most `limit` UTF-8 bytes on a scalar boundary, marked with "…" when cut.
    static func clamped(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let ellipsis = "…"
        var kept = 0
        var end = text.unicodeScalars.startIndex
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            guard kept + size <= limit - ellipsis.utf8.count else { break }
            kept += size
            end = text.unicodeScalars.index(after: end)
        }
        return String(text.unicodeScalars[..<end]) + ellipsis
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var json: JSONObject {
        var object: JSONObject = ["code": .string(code.rawValue), "message": .string(message)]
        if let field { object["field"] = .string(field) }
        return object
    }

    public init(json: JSONObject) throws(ProtocolError) {
        let raw = try Envelope.string(json, "code", in: "error")
        guard let code = ErrorCode(rawValue: raw) else {
            throw ProtocolError(.invalidRequest, "error.code '\(raw)' is not a known error code", field: "error.code")
        }
        self.init(code, try Envelope.string(json, "message", in: "error"),
                  field: try Envelope.optionalString(json, "field", in: "error"))
    }
}

/// Shape checks for the fields of the messages themselves (not of a method's params): their
/// failures are `invalid_request` and name the field, with its path when nested.
enum Envelope {
    static func string(_ object: JSONObject, _ key: String, in parent: String? = nil) throws(ProtocolError) -> String {
        guard let s = try optionalString(object, key, in: parent) else { throw missing(key, in: parent) }
        return s
    }

    static func optionalString(_ object: JSONObject, _ key: String, in parent: String? = nil) throws(ProtocolError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let s = value.stringValue else { throw wrong(key, in: parent, "a string", value) }
        return s
    }

    static func missing(_ key: String, in parent: String? = nil) -> ProtocolError {
        let path = parent.map { "\($0).\(key)" } ?? key
        return ProtocolError(.invalidRequest, "\(path) is required", field: path)
    }

    static func wrong(_ key: String, in parent: String? = nil, _ expected: String, _ value: JSONValue) -> ProtocolError {
        let path = parent.map { "\($0).\(key)" } ?? key
        return ProtocolError(.invalidRequest, "\(path) must be \(expected), got \(value.kind)", field: path)
    }
}
