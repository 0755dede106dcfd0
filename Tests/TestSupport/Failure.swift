import Foundation

/// A test-support failure with a message meant for the person reading the test log. Thrown from a
/// test, it fails that test with this text; nothing here traps.
public struct TestFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Fails the calling test (by throwing) when a file a test needs is not there, naming it and how to get it.
public func requireFile(_ path: String, _ remedy: String) throws {
    guard FileManager.default.fileExists(atPath: path) else { throw TestFailure("missing \(path): \(remedy)") }
}

/// A model file `make models` fetches: fails the calling test, naming the file, when it is missing.
public func requireModel(_ path: String) throws {
    try requireFile(path, "run `make models` (or point LOOKAHEAD_MODELS at a directory with the models)")
}
