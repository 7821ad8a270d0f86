// TLS contexts: TLS 1.2 or newer, certificates from PEM files, verification as configured.
#include "tls_context.hpp"

#include <openssl/ssl.h>

#include <boost/system/system_error.hpp>
#include <stdexcept>

namespace msgframe {

namespace ssl = boost::asio::ssl;

namespace {

ssl::context tls12_or_newer(ssl::context::method method) {
  ssl::context context(method);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                      ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  return context;
}

// Runs `load`, turning OpenSSL's failure into an error that names the option and the file.
template <class Load>
void load_file(const char* what, const std::string& file, Load load) {
  try {
    load(file);
  } catch (const boost::system::system_error& failure) {
    throw std::invalid_argument(std::string("TLS: cannot use the ") + what + " file '" + file +
                                "': " + failure.code().message());
  }
}

void load_certificate_and_key(ssl::context& context, const std::string& certificate_file,
                              const std::string& private_key_file) {
  load_file("certificate", certificate_file,
            [&](const std::string& file) { context.use_certificate_chain_file(file); });
  load_file("private key", private_key_file, [&](const std::string& file) {
    context.use_private_key_file(file, ssl::context::pem);
  });
}

}  // namespace

ssl::context make_server_tls_context(const TlsServerOptions& options) {
  if (options.certificate_file.empty() || options.private_key_file.empty()) {
    throw std::invalid_argument("TLS: the server needs a certificate file and a private key file");
  }
  auto context = tls12_or_newer(ssl::context::tls_server);
  load_certificate_and_key(context, options.certificate_file, options.private_key_file);
  if (!options.client_ca_file.empty()) {
    load_file("client CA", options.client_ca_file,
              [&](const std::string& file) { context.load_verify_file(file); });
    context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

ssl::context make_client_tls_context(const TlsClientOptions& options) {
  auto context = tls12_or_newer(ssl::context::tls_client);
  if (options.ca_file.empty()) {
    context.set_default_verify_paths();
  } else {
    load_file("CA", options.ca_file,
              [&](const std::string& file) { context.load_verify_file(file); });
  }
  context.set_verify_mode(options.verify_server ? ssl::verify_peer : ssl::verify_none);
  if (!options.certificate_file.empty() || !options.private_key_file.empty()) {
    load_certificate_and_key(context, options.certificate_file, options.private_key_file);
  }
  return context;
}

}  // namespace msgframe
