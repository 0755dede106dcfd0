/// A JSON value: what the protocol carries and what every module builds replies from.
/// Integers are kept apart from doubles so ids, seeds and counts survive exactly (a Double holds
/// integers exactly only up to 2^53).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

extension JSONValue {
    /// Integers that don't fit Int64 become doubles: JSON has one number type, and a double is
    /// what any other JSON reader would make of them.
    public init(_ value: some BinaryInteger) {
        self = Int64(exactly: value).map { .int($0) } ?? .double(Double(value))
    }

    /// Through the Float's own shortest digits: `Double(Float(0.6))` would print as 0.6000000238418579.
    public init(_ value: Float) {
        self = .double(value.isFinite ? Double(value.description)! : Double(value))
    }

    public var isNull: Bool { self == .null }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// Also accepts an integral double: a client's float type may print a count as `512.0`.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d): return Int64(exactly: d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// What an error message calls this value: the type, and the number itself for numbers
    /// (strings are not quoted back: they may be a whole prompt).
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int(let i): return "the integer \(i)"
        case .double(let d): return "the number \(d)"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue: CustomStringConvertible {
    /// Compact JSON, as it goes on the wire.
    public var description: String { String(decoding: JSONCodec.encode(self), as: UTF8.self) }
}

/// No nil literal: with one, `nil` meant for a `JSONValue?` silently becomes `.null`.
extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject()
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

/// A JSON object that keeps its keys in insertion order (replies print as they were built) and
/// finds them by hash (a client can't make a lookup slow by sending many keys).
/// Equality ignores order, as JSON's does.
public struct JSONObject: Sendable, Hashable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public private(set) var keys: [String] = []
    private var values: [String: JSONValue] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    /// Setting a key that exists keeps its position; setting nil removes it.
    public subscript(key: String) -> JSONValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var startIndex: Int { keys.startIndex }
    public var endIndex: Int { keys.endIndex }
    public subscript(position: Int) -> (key: String, value: JSONValue) {
        let key = keys[position]
        return (key, values[key]!)
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool { lhs.values == rhs.values }
    public func hash(into hasher: inout Hasher) { hasher.combine(values) }
}
