import Testing
@testable import LookaheadProtocol

private func text(_ value: JSONValue) -> String { String(decoding: JSONCodec.encode(value), as: UTF8.self) }
private func parse(_ text: String) throws(ProtocolError) -> JSONValue { try JSONCodec.decode(Array(text.utf8)) }

private func decodeError(_ text: String) -> ProtocolError? {
    do {
        _ = try parse(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct JSONCodecTests {
    @Test func scalarsPrintAsJSON() {
        #expect(text(.null) == "null")
        #expect(text(true) == "true")
        #expect(text(false) == "false")
        #expect(text(-42) == "-42")
        #expect(text("a\"b\\c\n/") == #""a\"b\\c\n/""#)
    }

    @Test func doublesPrintShort() {
        #expect(text(0.7) == "0.7")
        #expect(text(.double(0.1 + 0.2)) == "0.30000000000000004")
        #expect(text(2.0) == "2.0")
        #expect(text(1e-7) == "1e-07")
        #expect(text(.double(-0.0)) == "-0.0")
        #expect(text(.object(["alpha": 0.7, "c": 0.35])) == #"{"alpha":0.7,"c":0.35}"#)
    }

    @Test func floatsKeepTheirOwnDigits() {
        #expect(JSONValue(Float(0.6)) == .double(0.6))
        #expect(text(JSONValue(Float(0.95))) == "0.95")
    }

    @Test func nonFiniteDoublesAreWrittenAsNull() {
        #expect(text([.double(.nan), .double(.infinity), .double(-.infinity)]) == "[null,null,null]")
    }

    @Test(arguments: [Int64.max, Int64.min + 1, 9_007_199_254_740_993, 0, -1])
    func integersRoundTripExactly(_ i: Int64) throws {
        #expect(text(.int(i)) == String(i))
        #expect(try parse(String(i)) == .int(i))
    }

    @Test func integersBeyondInt64BecomeDoubles() throws {
        #expect(try parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
        #expect(JSONValue(UInt64.max - 1) == .double(Double(UInt64.max - 1)))
        #expect(JSONValue(7 as UInt8) == .int(7))
    }

    @Test(arguments: ["123456789012345678901234567890", "-9223372036854775809", "1e400", "-1e400", "NaN", "Infinity"])
    func numbersJSONCannotHoldAreRefused(_ literal: String) {
        let error = decodeError("[\(literal)]")
        #expect(error?.code == .invalidRequest)
        #expect(error?.message.contains("out of range or not finite") == true)
    }

    @Test func doublesRoundTrip() throws {
        for d in [0.7, 1e300, -2.5e-300, 123.456, .leastNonzeroMagnitude, 2.0] {
            #expect(try parse(text(.double(d))) == .double(d))
        }
    }

    @Test func unicodeRoundTrips() throws {
        let samples = ["héllo wörld", "日本語のテキスト", "emoji 😀👩‍👩‍👧", "mixed\tcontrol\u{01}\u{1F}", "right-to-left עברית", "", "\u{7F}\u{80}\u{FFFF}"]
        for s in samples {
            let bytes = JSONCodec.encode(.string(s))
            #expect(try JSONCodec.decode(bytes) == .string(s))
        }
        // Non-ASCII goes out as UTF-8, not as \u escapes.
        #expect(text("é") == "\"é\"")
    }

    @Test func escapesDecode() throws {
        #expect(try parse(#""\u00e9\ud83d\ude00\n\/""#) == .string("é😀\n/"))
    }

    @Test func embeddedNULRoundTripsInStrings() throws {
        let value: JSONValue = .string("a\u{0}b")
        #expect(text(value) == #""a\u0000b""#)
        #expect(try JSONCodec.decode(JSONCodec.encode(value)) == value)
    }

    @Test func embeddedNULCutsAnObjectKey() throws {
        // Documented json-c limit: keys are C strings.
        #expect(try parse(#"{"a\u0000b": 1}"#) == ["a": 1])
    }

    @Test func loneSurrogateBecomesReplacementCharacter() throws {
        #expect(try parse(#""\ud800""#) == .string("\u{FFFD}"))
    }

    @Test func invalidUTF8IsRefusedWithPosition() {
        let error = try? #require(throws: ProtocolError.self) { try JSONCodec.decode([0x22, 0x61, 0xFF, 0x22]) }
        #expect(error?.message == "invalid JSON: invalid utf-8 string at byte 2")
    }

    /// json-c checks only the shape of a UTF-8 sequence; these have the right shape and are still
    /// not UTF-8 (found by Tests/Fuzz): an overlong NUL, an overlong 3-byte form, a UTF-16
    /// surrogate (CESU-8), a code point past U+10FFFF. They must be refused, not turned into U+FFFD.
    @Test(arguments: [[0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] as [[UInt8]])
    func wellShapedInvalidUTF8IsRefused(_ sequence: [UInt8]) {
        for text in [[0x22, 0x61] + sequence + [0x22], Array(#"{""#.utf8) + sequence + Array(#"":1}"#.utf8)] {
            let error = try? #require(throws: ProtocolError.self) { try JSONCodec.decode(text) }
            #expect(error?.message == "invalid JSON: invalid utf-8 string at byte 2")
        }
    }

    @Test func nestedValuesRoundTrip() throws {
        let value: JSONValue = [
            "id": "req-1",
            "list": [1, 2.5, "three", .null, true, [[], [:]], ["deep": ["deeper": [1, [2, [3]]]]]],
            "empty": [:],
        ]
        #expect(try JSONCodec.decode(JSONCodec.encode(value)) == value)
    }

    @Test func objectsKeepKeyOrder() throws {
        let value = try parse(#"{"z": 1, "a": 2, "m": 3}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m"])
        #expect(text(value) == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test func objectEqualityIgnoresOrder() {
        let ab: JSONObject = ["a": 1, "b": 2]
        let ba: JSONObject = ["b": 2, "a": 1]
        #expect(ab == ba)
        #expect(ab.hashValue == ba.hashValue)
        #expect(ab != ["a": 1, "b": 3])
    }

    @Test func objectSubscriptReplacesInPlaceAndRemoves() {
        var object: JSONObject = ["a": 1, "b": 2, "c": 3]
        object["a"] = 10
        object["b"] = nil
        object["d"] = 4
        #expect(object.keys == ["a", "c", "d"])
        #expect(object.map(\.value) == [10, 3, 4])
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        #expect(try parse(#"{"a": 1, "a": 2}"#) == ["a": 2])
    }

    @Test func topLevelScalarsDecode() throws {
        #expect(try parse("12") == 12)
        #expect(try parse(" 0.5 ") == 0.5)
        #expect(try parse("null") == .null)
        #expect(try parse("\"x\"") == "x")
    }

    @Test func invalidJSONNamesTheProblemAndByte() {
        #expect(decodeError(#"{"a": 1,}"#)?.message == "invalid JSON: unexpected character at byte 8")
        #expect(decodeError(#"{"a" 1}"#)?.message == "invalid JSON: object property name separator ':' expected at byte 5")
        #expect(decodeError(#"{"a": tru}"#)?.message.hasPrefix("invalid JSON: boolean expected at byte") == true)
        #expect(decodeError(#"{"a": 1} x"#)?.message == "invalid JSON: unexpected character at byte 9")
        #expect(decodeError(#"{"a": 1}{}"#)?.message == "invalid JSON: unexpected character at byte 8")
        #expect(decodeError(#"{"a": "#)?.message == "invalid JSON: unexpected end of data at byte 6")
        #expect(decodeError("")?.message == "invalid JSON: unexpected end of data at byte 0")
        #expect(decodeError("'single'")?.code == .invalidRequest)
        #expect(decodeError("[1, 2")?.code == .invalidRequest)
    }

    @Test func rawNULAfterTheValueIsTrailingData() {
        let error = try? #require(throws: ProtocolError.self) { try JSONCodec.decode(Array(#"{"a":1}"#.utf8) + [0, 0x78]) }
        #expect(error?.message == "invalid JSON: unexpected data after the value at byte 7")
    }

    @Test func nestingIsBounded() throws {
        let ok = String(repeating: "[", count: JSONCodec.maxDepth) + String(repeating: "]", count: JSONCodec.maxDepth)
        #expect(try parse(ok).arrayValue != nil)
        let deep = "[" + ok + "]"
        #expect(decodeError(deep)?.message.contains("nesting too deep") == true)
    }

    @Test func decodeObjectRefusesOtherTopLevels() throws {
        #expect(try JSONCodec.decodeObject(Array(#"{"a":[1]}"#.utf8)) == ["a": [1]])
        for (input, kind) in [("[1]", "an array"), ("\"s\"", "a string"), ("3", "the integer 3"), ("null", "null")] {
            let error = try #require(throws: ProtocolError.self) { try JSONCodec.decodeObject(Array(input.utf8)) }
            #expect(error.code == .invalidRequest)
            #expect(error.message == "a message must be a JSON object, got \(kind)")
        }
    }

    @Test func decodesNonContiguousInput() throws {
        let bytes = Array(#"{"k":"v"}"#.utf8)
        #expect(try JSONCodec.decode(bytes.lazy.map { $0 }) == ["k": "v"])
    }

    @Test func accessorsConvertOnlyWhatTheyShould() {
        #expect(JSONValue.double(512).intValue == 512)
        #expect(JSONValue.double(0.5).intValue == nil)
        #expect(JSONValue.int(3).doubleValue == 3)
        #expect(JSONValue.string("3").intValue == nil)
        #expect(JSONValue.null.isNull)
        #expect(JSONValue.bool(false).boolValue == false)
    }

    @Test func descriptionIsCompactJSON() {
        let value: JSONValue = ["a": [1, "x"]]
        #expect(value.description == #"{"a":[1,"x"]}"#)
    }
}
