/// A request's parameters, read through typed accessors whose failures are `invalid_params`
/// errors naming the field and the type it needs. JSON null counts as absent, so a client may
/// send null for "use the default". Ranges and meanings are the method's to check.
public struct Params: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public var object: JSONObject

    public init(_ object: JSONObject = [:]) { self.object = object }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        object = JSONObject()
        for (key, value) in elements { object[key] = value }
    }

    /// The raw value; nil when absent or null.
    public subscript(key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    public func string(_ key: String) throws(ProtocolError) -> String {
        try required(key, optionalString(key))
    }

    public func optionalString(_ key: String) throws(ProtocolError) -> String? {
        try typed(key, "a string") { $0.stringValue }
    }

    /// An integral double (`512.0`) is accepted; a fractional one is not.
    public func int(_ key: String) throws(ProtocolError) -> Int {
        try required(key, optionalInt(key))
    }

    public func optionalInt(_ key: String) throws(ProtocolError) -> Int? {
        try typed(key, "an integer") { $0.intValue.flatMap { Int(exactly: $0) } }
    }

    /// An integer is accepted.
    public func double(_ key: String) throws(ProtocolError) -> Double {
        try required(key, optionalDouble(key))
    }

    public func optionalDouble(_ key: String) throws(ProtocolError) -> Double? {
        try typed(key, "a number") { $0.doubleValue }
    }

    public func bool(_ key: String) throws(ProtocolError) -> Bool {
        try required(key, optionalBool(key))
    }

    public func optionalBool(_ key: String) throws(ProtocolError) -> Bool? {
        try typed(key, "a boolean") { $0.boolValue }
    }

    /// A string that must be one of an enumeration's raw values (`mode`, `verifier`); the error lists them.
    public func optionalChoice<T: RawRepresentable & CaseIterable>(
        _ key: String, as type: T.Type = T.self
    ) throws(ProtocolError) -> T? where T.RawValue == String {
        guard let raw = try optionalString(key) else { return nil }
        guard let choice = T(rawValue: raw) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ProtocolError(.invalidParams, "\(key) must be one of \(allowed), got '\(raw)'", field: key)
        }
        return choice
    }

    /// A misspelt parameter (`max_token`) is an error, not a silently used default.
    public func rejectUnknown(allowed: Set<String>) throws(ProtocolError) {
        if let stray = object.keys.first(where: { !allowed.contains($0) }) {
            throw ProtocolError(.invalidParams, "unknown parameter \(stray)", field: stray)
        }
    }

    private func typed<T>(_ key: String, _ expected: String, _ convert: (JSONValue) -> T?) throws(ProtocolError) -> T? {
        guard let value = self[key] else { return nil }
        guard let converted = convert(value) else {
            throw ProtocolError(.invalidParams, "\(key) must be \(expected), got \(value.kind)", field: key)
        }
        return converted
    }

    private func required<T>(_ key: String, _ value: T?) throws(ProtocolError) -> T {
        guard let value else { throw ProtocolError(.invalidParams, "\(key) is required", field: key) }
        return value
    }
}
