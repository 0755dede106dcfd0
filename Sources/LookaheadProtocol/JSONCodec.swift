import CJSONC

/// JSON text ⇄ `JSONValue` through json-c. Every json-c reference is made and put inside this
/// type, each within the call that made it, so no other module sees one and none outlives a call.
///
/// What json-c does that a reader of the wire should know:
/// - Strings round-trip any Unicode, U+0000 included (written `\u0000`). Object *keys* are C
///   strings in json-c: a key is cut at U+0000. No key of this protocol contains one.
/// - A lone UTF-16 surrogate escape (`"\ud800"`) decodes to U+FFFD; raw bytes that are not UTF-8
///   are an error, the well-formed-looking ones json-c lets through included.
/// - Integers outside Int64 but below 2^64 decode as doubles. json-c saturates larger ones to
///   -2^63 or 2^64-1 without saying so, so those two values are refused as out of range.
/// - NaN and ±∞ are not JSON: they are refused when decoding (json-c would accept `NaN`, `1e400`)
///   and written as `null` when encoding, as JavaScript's JSON.stringify does.
public enum JSONCodec {
    /// Deeper nesting is refused while parsing; it also bounds the recursion that converts.
    public static let maxDepth = 64

    /// Compact JSON. Doubles print in their shortest round-tripping form (0.7, not 0.69999999999999996).
    public static func encode(_ value: JSONValue) -> [UInt8] {
        let root = make(value)
        defer { json_object_put(root) }
        var length = 0
        let flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE
        guard let text = json_object_to_json_string_length(root, flags, &length) else { outOfMemory() }
        return Array(UnsafeRawBufferPointer(start: text, count: length))
    }

    /// Parses exactly one JSON value; anything but whitespace after it is an error.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> JSONValue {
        let result = bytes.withContiguousStorageIfAvailable { parse(UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { parse($0) }
        return try result.get()
    }

    /// Parses a message, which must be a JSON object.
    public static func decodeObject(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> JSONObject {
        let value = try decode(bytes)
        guard let object = value.objectValue else {
            throw ProtocolError(.invalidRequest, "a message must be a JSON object, got \(value.kind)")
        }
        return object
    }

    // MARK: - Swift → json-c

    /// A new reference, owned by the caller. JSON null is json-c's NULL object.
    private static func make(_ value: JSONValue) -> OpaquePointer? {
        switch value {
        case .null:
            return nil
        case .bool(let b):
            return allocated(json_object_new_boolean(b ? 1 : 0))
        case .int(let i):
            return allocated(json_object_new_int64(i))
        case .double(let d):
            guard d.isFinite else { return nil }
            // json-c prints the given text instead of its own 17-digit form; Swift's is the shortest that round-trips.
            return allocated(d.description.withCString { json_object_new_double_s(d, $0) })
        case .string(var s):
            guard !s.isEmpty else { return allocated(json_object_new_string("")) }
            // With the length given, json-c keeps embedded NULs.
            return allocated(s.withUTF8 { utf8 in
                utf8.withMemoryRebound(to: CChar.self) { json_object_new_string_len($0.baseAddress, Int32($0.count)) }
            })
        case .array(let items):
            let array = allocated(json_object_new_array_ext(Int32(items.count)))
            for item in items {
                // array_add takes over the element's reference.
                guard json_object_array_add(array, make(item)) == 0 else { outOfMemory() }
            }
            return array
        case .object(let fields):
            let object = allocated(json_object_new_object())
            for (key, item) in fields {
                // object_add takes over the value's reference.
                guard json_object_object_add(object, key, make(item)) == 0 else { outOfMemory() }
            }
            return object
        }
    }

    private static func allocated(_ object: OpaquePointer?) -> OpaquePointer {
        guard let object else { outOfMemory() }
        return object
    }

    private static func outOfMemory() -> Never { fatalError("json-c: out of memory") }

    // MARK: - json-c → Swift

    private static func parse(_ text: UnsafeRawBufferPointer) -> Result<JSONValue, ProtocolError> {
        func invalid(_ what: String) -> Result<JSONValue, ProtocolError> {
            .failure(ProtocolError(.invalidRequest, "invalid JSON: \(what)"))
        }
        // json-c takes an int length; frames are far smaller, but a direct caller may not be.
        guard text.count < Int32.max else { return invalid("\(text.count) bytes is more than json-c can parse") }
        guard let tokener = json_tokener_new_ex(Int32(maxDepth)) else { outOfMemory() }
        defer { json_tokener_free(tokener) }
        json_tokener_set_flags(tokener, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8)

        let chars = text.baseAddress?.assumingMemoryBound(to: CChar.self)
        var root = json_tokener_parse_ex(tokener, chars, Int32(text.count))
        var error = json_tokener_get_error(tokener)
        var end = json_tokener_get_parse_end(tokener)
        if error == json_tokener_continue {
            // A number has no end of its own: json-c finishes it (or reports the input cut short)
            // only once it sees the terminating NUL.
            root = json_tokener_parse_ex(tokener, "", 1)
            error = json_tokener_get_error(tokener)
            end = text.count
        }
        defer { json_object_put(root) }
        guard error == json_tokener_success else {
            return invalid("\(String(cString: json_tokener_error_desc(error))) at byte \(end)")
        }
        guard end == text.count else { return invalid("unexpected data after the value at byte \(end)") }
        if let bad = firstInvalidUTF8(text) { return invalid("invalid utf-8 string at byte \(bad)") }
        return Result { () throws(ProtocolError) in try convert(root) }
    }

    /// json-c checks only the shape of each UTF-8 sequence: overlong forms, surrogates and code
    /// points past U+10FFFF get through, and converting them to String would quietly make them U+FFFD.
    private static func firstInvalidUTF8(_ text: UnsafeRawBufferPointer) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var bytes = text.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &bytes) {
            case .valid(let scalar): offset += scalar.count
            case .error: return offset
            case .emptyInput: return nil
            }
        }
    }

    /// Recursion depth is bounded by the tokener's `maxDepth`.
    private static func convert(_ object: OpaquePointer?) throws(ProtocolError) -> JSONValue {
        guard let object else { return .null }
        switch json_object_get_type(object) {
        case json_type_boolean:
            return .bool(json_object_get_boolean(object) != 0)
        case json_type_int:
            let i = json_object_get_int64(object)
            if i == .max {
                let u = json_object_get_uint64(object)
                guard u != .max else { throw outOfRange }
                return u > UInt64(Int64.max) ? .double(Double(u)) : .int(i)
            }
            guard i != .min else { throw outOfRange }
            return .int(i)
        case json_type_double:
            let d = json_object_get_double(object)
            guard d.isFinite else { throw outOfRange }
            return .double(d)
        case json_type_string:
            let bytes = UnsafeRawBufferPointer(
                start: json_object_get_string(object), count: Int(json_object_get_string_len(object)))
            return .string(String(decoding: bytes, as: UTF8.self))
        case json_type_array:
            let count = json_object_array_length(object)
            var items: [JSONValue] = []
            items.reserveCapacity(count)
            for index in 0..<count { items.append(try convert(json_object_array_get_idx(object, index))) }
            return .array(items)
        case json_type_object:
            var fields = JSONObject()
            var it = json_object_iter_begin(object)
            var end = json_object_iter_end(object)
            while json_object_iter_equal(&it, &end) == 0 {
                fields[String(cString: json_object_iter_peek_name(&it))] = try convert(json_object_iter_peek_value(&it))
                json_object_iter_next(&it)
            }
            return .object(fields)
        default:
            return .null
        }
    }

    private static var outOfRange: ProtocolError {
        ProtocolError(.invalidRequest, "invalid JSON: a number is out of range or not finite")
    }
}
