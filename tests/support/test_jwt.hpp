// SPDX-License-Identifier: Apache-2.0
//
// Decentralized NATS authentication for tests, made at test time (nothing is committed): an
// operator, a system account, an account with JetStream and users of it, as NKeys (Ed25519,
// libcrypto) with signed JWTs (header {"typ":"JWT","alg":"ed25519-nkey"}, claims with "nats"
// {"type", "version": 2, ...}), the nats-server configuration that trusts them (operator mode
// with a MEMORY resolver preloaded with the accounts), and .creds files in the form nsc writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvelect::testing {

// An NKey pair: the seed ("SO...", "SA...", "SU...") and its public key ("O...", "A...",
// "U...").
struct JwtNkey {
  std::string seed;
  std::string public_key;
  std::vector<std::uint8_t> raw_seed; // the 32-byte Ed25519 private key
};

class TestOperator {
public:
  // Makes the keys and JWTs; writes the operator JWT into `dir` (which must exist). ok() tells
  // whether it worked (error() says why not, e.g. no libcrypto in this build).
  explicit TestOperator(const std::string& dir);
  // Whether this build can make them (the test support was built with libcrypto).
  static bool available();
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // The lines of a nats-server configuration that trust this operator: `operator`,
  // `system_account`, `resolver: MEMORY` and `resolver_preload` with the system account and the
  // JetStream account (not the unknown one).
  std::string server_config() const;

  // Writes a .creds file (user JWT and seed) of a new user of the JetStream account and returns
  // its path.
  std::string write_user_creds(const std::string& path) const;
  // The same for a user of an account the server does not know (signed by this operator but not
  // preloaded): the server refuses it.
  std::string write_unknown_account_creds(const std::string& path) const;

  const std::string& account_public_key() const { return account_.public_key; }

private:
  std::string write_creds(const std::string& path, const JwtNkey& account) const;

  std::string error_;
  std::string operator_jwt_path_;
  JwtNkey operator_;
  JwtNkey system_;
  JwtNkey account_;
  JwtNkey unknown_;
  std::string system_jwt_;
  std::string account_jwt_;
};

} // namespace kvelect::testing
