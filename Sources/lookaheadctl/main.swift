import ArgumentParser
import Foundation
import Logging
import LookaheadProtocol

// The CLI's own output stays readable: library logs (llama.cpp's warnings among them) only when they are errors.
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .error
    return handler
}
do {
    var command = try LookaheadCtl.parseAsRoot()
    try command.run()
} catch let error as ClientError {
    FileHandle.standardError.write("Error: \(error)\n")
    exit(ExitStatus(error).rawValue)
} catch let error where LookaheadCtl.exitCode(for: error) == .validationFailure {
    // ArgumentParser exits with EX_USAGE (64) here; 2 is what most tools, and our documentation, use.
    FileHandle.standardError.write(LookaheadCtl.fullMessage(for: error) + "\n")
    exit(ExitStatus.usage.rawValue)
} catch {
    LookaheadCtl.exit(withError: error)
}
