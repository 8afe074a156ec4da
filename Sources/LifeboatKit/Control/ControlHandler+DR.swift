import Foundation

extension ControlHandler {
    /// Rollback, quarantine, reports and schedules.
    func respondDR(_ request: ControlRequest, peer: PeerCredentials) async throws -> Data {
        throw ControlError(.unavailable, "\(request.command) is not available in this build")
    }
}
