/**
 * The one import point of @peculiar/x509 (certificate and CSR generation over WebCrypto). It needs the
 * reflect-metadata polyfill loaded first and Node's WebCrypto as its provider; doing both here keeps that
 * ordering in one place.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
