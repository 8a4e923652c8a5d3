// SPDX-License-Identifier: Apache-2.0
#include "test_pki.hpp"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace kvelect::testing {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs a shell script in `dir`; "" on success, else the script's output.
std::string run_script(const std::string& dir, const std::string& name, const std::string& body) {
  const std::string script = dir + "/" + name + ".sh";
  const std::string log = dir + "/" + name + ".log";
  std::ofstream(script, std::ios::trunc) << "set -e\ncd '" << dir << "'\n" << body;
  const std::string command = "sh '" + script + "' >'" + log + "' 2>&1";
  if (std::system(command.c_str()) == 0) // NOLINT(concurrency-mt-unsafe): test set-up
    return {};
  const std::string output = read_all(log);
  return "openssl failed (" + script + "):\n" + (output.empty() ? "(no output)" : output);
}

std::uint16_t crc16(const std::vector<std::uint8_t>& data) {
  std::uint16_t crc = 0;
  for (std::uint8_t byte : data) {
    crc ^= static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
  }
  return crc;
}

} // namespace

std::string nkey_encode(std::vector<std::uint8_t> data) {
  const std::uint16_t crc = crc16(data);
  data.push_back(static_cast<std::uint8_t>(crc & 0xff));
  data.push_back(static_cast<std::uint8_t>(crc >> 8));
  static const char* const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::uint8_t byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += alphabet[(buffer >> bits) & 31];
    }
    buffer &= (1U << bits) - 1;
  }
  if (bits > 0)
    out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

TestPki::TestPki(const std::string& dir)
    : ca(dir + "/ca.pem"), server_cert(dir + "/server.pem"), server_key(dir + "/server.key"),
      client_cert(dir + "/client.pem"), client_key(dir + "/client.key"),
      other_ca(dir + "/other-ca.pem") {
  // A config of our own: the commands must not depend on /etc/ssl/openssl.cnf.
  const std::string body = R"(cat > req.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kvelect test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
subjectAltName = IP:127.0.0.1,DNS:localhost
extendedKeyUsage = serverAuth
[client]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
CNF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
key ca.key
openssl req -new -x509 -config req.cnf -extensions ca -key ca.key -subj "/CN=kvelect test CA" -days 2 -out ca.pem
key other-ca.key
openssl req -new -x509 -config req.cnf -extensions ca -key other-ca.key -subj "/CN=kvelect other CA" -days 2 -out other-ca.pem
for who in server client; do
  key $who.key
  openssl req -new -config req.cnf -key $who.key -subj "/CN=kvelect-test-$who" -out $who.csr
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile req.cnf -extensions $who -out $who.pem
done
)";
  error_ = run_script(dir, "pki", body);
}

std::string TestPki::server_tls_block(bool verify) const {
  return "tls {\n  cert_file: \"" + server_cert + "\"\n  key_file: \"" + server_key +
         "\"\n  ca_file: \"" + ca + "\"\n  verify: " + (verify ? "true" : "false") +
         "\n  timeout: 2\n}\n";
}

std::optional<TestNkey> make_user_nkey(const std::string& dir, std::string* error) {
  static int counter = 0;
  const std::string name = "nkey" + std::to_string(counter++);
  const std::string failed =
      run_script(dir, name,
                 "openssl genpkey -algorithm ed25519 -outform DER -out " + name +
                     ".der\nopenssl pkey -inform DER -in " + name +
                     ".der -pubout -outform DER -out " + name + ".pub.der\n");
  if (!failed.empty()) {
    if (error != nullptr)
      *error = failed;
    return std::nullopt;
  }
  // The raw 32-byte keys end both DER encodings (PKCS#8 and SubjectPublicKeyInfo).
  const std::string private_der = read_all(dir + "/" + name + ".der");
  const std::string public_der = read_all(dir + "/" + name + ".pub.der");
  if (private_der.size() < 32 || public_der.size() < 32) {
    if (error != nullptr)
      *error = "openssl wrote short Ed25519 keys";
    return std::nullopt;
  }
  constexpr std::uint8_t kSeed = 18 << 3;
  constexpr std::uint8_t kUser = 20 << 3;
  std::vector<std::uint8_t> seed{static_cast<std::uint8_t>(kSeed | (kUser >> 5)),
                                 static_cast<std::uint8_t>((kUser & 31) << 3)};
  for (std::size_t i = private_der.size() - 32; i < private_der.size(); ++i)
    seed.push_back(static_cast<std::uint8_t>(private_der[i]));
  std::vector<std::uint8_t> pub{kUser};
  for (std::size_t i = public_der.size() - 32; i < public_der.size(); ++i)
    pub.push_back(static_cast<std::uint8_t>(public_der[i]));
  return TestNkey{nkey_encode(seed), nkey_encode(pub)};
}

} // namespace kvelect::testing
