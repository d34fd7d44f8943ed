def test_an_authority_without_the_tpm_stack_says_it_cannot_read_tpm_evidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No TPM needed: the stack is made absent, as on an authority installed without the extra."""
    from fleetid.authority.attestation import examine_attested_csr
    from fleetid.tpm import evidence

    def absent() -> None:
        raise e.TpmError("the TPM stack is not installed (No module named 'tpm2_pytss')")

    monkeypatch.setattr(evidence, "tss", absent)
    line = SoftwareTpmLine.create(clock=ManualClock())
    statement = TcgAttestCertify(attest=b"attest", signature=b"signature", public=b"public")
    bundle = AttestationBundle(
        statements=(
            AttestationStatement(
                type=TCG_ATTEST_CERTIFY_OID, statement=encode_tcg_attest_certify(statement)
            ),
        ),
        certificates=(line.line_ca,),
    )
    csr = build_attested_csr(
        subject=SUBJECT, signer=SoftwareSigner(new_private_key()), bundle=bundle
    )
    policy = VerificationPolicy(manufacturer_roots=(line.root,))
    with pytest.raises(e.EvidenceFormatUnsupportedError, match="tpm2_pytss"):
        examine_attested_csr(csr, policy=policy, now=line.clock.now())
