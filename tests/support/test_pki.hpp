// SPDX-License-Identifier: Apache-2.0
//
// Throw-away credentials for connection tests, made at test time (nothing is committed): a test
// CA with a server certificate (127.0.0.1 and localhost) and a client certificate, made by
// Debian's `openssl` command; and user NKeys (an Ed25519 key from `openssl genpkey`, encoded
// here as nsc encodes it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvelect::testing {

struct TestPki {
  // Writes everything into `dir` (which must exist). ok() tells whether openssl succeeded;
  // error() then has its output.
  explicit TestPki(const std::string& dir);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  std::string ca;          // the test CA's certificate (PEM)
  std::string server_cert; // signed by ca, for IP 127.0.0.1 and DNS localhost
  std::string server_key;
  std::string client_cert; // signed by ca, CN kvelect-test-client
  std::string client_key;
  std::string other_ca; // an unrelated CA: a client trusting only it must refuse the server

  // A nats-server `tls { ... }` block with the server certificate; verify: clients must present
  // a certificate signed by ca (mutual TLS).
  std::string server_tls_block(bool verify) const;

private:
  std::string error_;
};

struct TestNkey {
  std::string seed;       // "SU..."
  std::string public_key; // "U..."
};

// An NKey's text (nsc's encoding): base32 (RFC 4648, unpadded) of `data` (the prefix byte(s) and
// the raw 32-byte key) followed by its CRC-16 (XMODEM), little-endian.
std::string nkey_encode(std::vector<std::uint8_t> data);

// A fresh user NKey; nullopt (and `error` set) if openssl failed. Scratch files go into `dir`.
std::optional<TestNkey> make_user_nkey(const std::string& dir, std::string* error = nullptr);

} // namespace kvelect::testing
