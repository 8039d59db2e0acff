/**
 * TLS for gRPC from reloading material (tls-reloader.ts), through grpc-js's certificate
 * providers: a server's certificate (and the CA its clients' certificates must chain to) and a
 * client's trust (and certificate) are replaced on each reload, for the connections made from
 * then on, without restarting the server or the channel.
 */
import { getCACertificates } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ReloadingTls } from '../tls/tls-reloader.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/**
 * A grpc-js certificate provider over `tls`: its certificate and key as the identity, its CA
 * bundle (else `defaultCa`) as the trust. Listeners hear the material in use on the next tick
 * (grpc-js registers its own watcher only after adding the listener) and then every reload.
 */
export function certificateProvider(
  tls: ReloadingTls,
  defaultCa?: Buffer,
): grpc.experimental.CertificateProvider {
  const caListeners = new Set<CaListener>();
  const identityListeners = new Set<IdentityListener>();
  const caOf = (ca: Buffer | undefined) => {
    const bundle = ca ?? defaultCa;
    return bundle ? { caCertificate: bundle } : null;
  };
  const identityOf = (cert: Buffer | undefined, key: Buffer | undefined) =>
    cert && key ? { certificate: cert, privateKey: key } : null;
  let unsubscribe: (() => void) | undefined;
  const follow = () => {
    unsubscribe ??= tls.onChange((material) => {
      for (const listener of caListeners) listener(caOf(material.ca));
      for (const listener of identityListeners) listener(identityOf(material.cert, material.key));
    });
  };
  const unfollow = () => {
    if (caListeners.size > 0 || identityListeners.size > 0) return;
    unsubscribe?.();
    unsubscribe = undefined;
  };
  return {
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      follow();
      process.nextTick(() => caListeners.has(listener) && listener(caOf(tls.current.ca)));
    },
    removeCaCertificateListener(listener) {
      caListeners.delete(listener);
      unfollow();
    },
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      follow();
      process.nextTick(
        () => identityListeners.has(listener) && listener(identityOf(tls.current.cert, tls.current.key)),
      );
    },
    removeIdentityCertificateListener(listener) {
      identityListeners.delete(listener);
      unfollow();
    },
  };
}

/**
 * Server credentials serving `tls`'s certificate; with `requireClientCertificate`, every client
 * must present a certificate chaining to `tls`'s CA bundle (mutual TLS), else its handshake fails.
 */
export function grpcServerCredentials(
  tls: ReloadingTls,
  options: { requireClientCertificate: boolean },
): grpc.ServerCredentials {
  const provider = certificateProvider(tls);
  // grpc-js 1.14 declares the parameters as (ca, identity) but reads them as (identity, ca):
  // the types (identity required, CA nullable) are the ones it acts on.
  return grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    options.requireClientCertificate ? provider : null,
    options.requireClientCertificate,
  );
}

/**
 * Channel credentials for a TLS server: trusting `tls`'s CA bundle, or the default CAs (the
 * system's, and NODE_EXTRA_CA_CERTS) without one, and presenting `tls`'s certificate when it has
 * one (for a server asking for client certificates). Without `tls`: the default CAs, no certificate.
 */
export function grpcChannelCredentials(tls: ReloadingTls | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createSsl();
  const provider = certificateProvider(tls, Buffer.from(getCACertificates('default').join('\n')));
  return grpc.experimental.createCertificateProviderChannelCredentials(
    provider,
    tls.current.cert ? provider : null,
  );
}
