// SPDX-License-Identifier: Apache-2.0
#include "test_jwt.hpp"

#include "test_pki.hpp"

#include <chrono>
#include <fstream>
#include <memory>
#include <stdexcept>

#if KVELECT_TEST_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#include <openssl/rand.h>
#endif

namespace kvelect::testing {
namespace {

// NKey prefix bytes (the first base32 letter of the key): seed 'S', operator 'O', account 'A',
// user 'U'.
constexpr std::uint8_t kSeed = 18 << 3;
constexpr std::uint8_t kOperator = 14 << 3;
constexpr std::uint8_t kAccount = 0;
constexpr std::uint8_t kUser = 20 << 3;

std::string base64url(const std::string& data) {
  static const char* const alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(buffer >> bits) & 63];
    }
    buffer &= (1U << bits) - 1;
  }
  if (bits > 0)
    out += alphabet[(buffer << (6 - bits)) & 63];
  return out; // JWTs use the unpadded form
}

#if KVELECT_TEST_HAVE_LIBCRYPTO

struct PkeyFree {
  void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

PkeyPtr private_key(const std::vector<std::uint8_t>& raw_seed) {
  PkeyPtr key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw_seed.data(), raw_seed.size()));
  if (!key)
    throw std::runtime_error("EVP_PKEY_new_raw_private_key failed");
  return key;
}

JwtNkey make_nkey(std::uint8_t kind) {
  JwtNkey nkey;
  nkey.raw_seed.resize(32);
  if (RAND_bytes(nkey.raw_seed.data(), 32) != 1)
    throw std::runtime_error("RAND_bytes failed");
  const PkeyPtr key = private_key(nkey.raw_seed);
  std::vector<std::uint8_t> pub(33);
  pub[0] = kind;
  std::size_t size = 32;
  if (EVP_PKEY_get_raw_public_key(key.get(), pub.data() + 1, &size) != 1 || size != 32)
    throw std::runtime_error("EVP_PKEY_get_raw_public_key failed");
  std::vector<std::uint8_t> seed{static_cast<std::uint8_t>(kSeed | (kind >> 5)),
                                 static_cast<std::uint8_t>((kind & 31) << 3)};
  seed.insert(seed.end(), nkey.raw_seed.begin(), nkey.raw_seed.end());
  nkey.seed = nkey_encode(seed);
  nkey.public_key = nkey_encode(pub);
  return nkey;
}

std::string sign(const JwtNkey& signer, const std::string& message) {
  const PkeyPtr key = private_key(signer.raw_seed);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string signature(64, '\0');
  std::size_t size = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    throw std::runtime_error("Ed25519 signing failed");
  signature.resize(size);
  return signature;
}

// A JWT of `subject`, issued (signed) by `issuer`; `nats` is the "nats" claim's JSON object.
std::string make_jwt(const JwtNkey& issuer, const std::string& subject, const std::string& name,
                     const std::string& nats) {
  const auto iat = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  // jti identifies the JWT; nsc makes it a hash of the claims, a unique string does for tests.
  std::vector<std::uint8_t> id(32);
  if (RAND_bytes(id.data(), 32) != 1)
    throw std::runtime_error("RAND_bytes failed");
  const std::string claims = "{\"jti\":\"" + nkey_encode(id) + "\",\"iat\":" + std::to_string(iat) +
                             ",\"iss\":\"" + issuer.public_key + "\",\"name\":\"" + name +
                             "\",\"sub\":\"" + subject + "\",\"nats\":" + nats + "}";
  const std::string signing_input =
      base64url(R"({"typ":"JWT","alg":"ed25519-nkey"})") + "." + base64url(claims);
  return signing_input + "." + base64url(sign(issuer, signing_input));
}

std::string account_jwt(const JwtNkey& op, const JwtNkey& account, const std::string& name,
                        bool jetstream) {
  // -1: unlimited. The JetStream limits (mem_storage, disk_storage, streams, consumer) enable
  // JetStream for the account; left out (0), it has none.
  std::string limits = R"("subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,)"
                       R"("wildcards":true,"conn":-1,"leaf":-1)";
  if (jetstream)
    limits += R"(,"mem_storage":-1,"disk_storage":-1,"streams":-1,"consumer":-1)";
  return make_jwt(
      op, account.public_key, name,
      "{\"limits\":{" + limits +
          R"(},"default_permissions":{"pub":{},"sub":{}},"type":"account","version":2})");
}

#endif

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + path);
}

} // namespace

TestOperator::TestOperator(const std::string& dir) : operator_jwt_path_(dir + "/operator.jwt") {
#if KVELECT_TEST_HAVE_LIBCRYPTO
  try {
    operator_ = make_nkey(kOperator);
    system_ = make_nkey(kAccount);
    account_ = make_nkey(kAccount);
    unknown_ = make_nkey(kAccount);
    write_text(operator_jwt_path_,
               make_jwt(operator_, operator_.public_key, "kvelect-test-operator",
                        "{\"system_account\":\"" + system_.public_key +
                            R"(","type":"operator","version":2})"));
    system_jwt_ = account_jwt(operator_, system_, "SYS", false);
    account_jwt_ = account_jwt(operator_, account_, "KVELECT", true);
  } catch (const std::exception& e) {
    error_ = e.what();
  }
#else
  error_ = "the test support was built without libcrypto: no JWTs";
#endif
}

bool TestOperator::available() { return KVELECT_TEST_HAVE_LIBCRYPTO != 0; }

std::string TestOperator::server_config() const {
  return "operator: \"" + operator_jwt_path_ + "\"\nsystem_account: " + system_.public_key +
         "\nresolver: MEMORY\nresolver_preload: {\n  " + system_.public_key + ": \"" + system_jwt_ +
         "\"\n  " + account_.public_key + ": \"" + account_jwt_ + "\"\n}\n";
}

std::string TestOperator::write_creds(const std::string& path, const JwtNkey& account) const {
#if KVELECT_TEST_HAVE_LIBCRYPTO
  const JwtNkey user = make_nkey(kUser);
  const std::string jwt =
      make_jwt(account, user.public_key, "kvelect-test-user",
               R"({"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2})");
  // The layout nsc and `nats` write (and cnats reads: the JWT and the seed between the marker
  // lines).
  write_text(path, "-----BEGIN NATS USER JWT-----\n" + jwt +
                       "\n------END NATS USER JWT------\n\n"
                       "************************* IMPORTANT *************************\n"
                       "NKEY Seed printed below can be used to sign and prove identity.\n"
                       "NKEYs are sensitive and should be treated as secrets.\n\n"
                       "-----BEGIN USER NKEY SEED-----\n" +
                       user.seed +
                       "\n------END USER NKEY SEED------\n\n"
                       "*************************************************************\n");
#else
  (void)account;
#endif
  return path;
}

std::string TestOperator::write_user_creds(const std::string& path) const {
  return write_creds(path, account_);
}

std::string TestOperator::write_unknown_account_creds(const std::string& path) const {
  return write_creds(path, unknown_);
}

} // namespace kvelect::testing
