import Foundation
import LookaheadProtocol
import Testing
import TestSupport

/// A daemon for these tests: in a sandbox of its own, with `config` merged onto the small
/// defaults, loading the cached default models.
func startDaemon(config: String = "", arguments: [String]? = nil, environment: [String: String] = [:],
                 launcher: [String] = [], waitForSocket: Bool = true) throws -> DaemonProcess {
    try Sandbox().start(config: config, arguments: arguments, environment: environment, launcher: launcher,
                        waitForSocket: waitForSocket)
}

extension DaemonProcess {
    func status() throws -> JSONObject { try #require(try client().call(method: "status").objectValue) }
}
