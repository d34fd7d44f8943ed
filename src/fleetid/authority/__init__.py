"""The lifecycle authorities: the X.509 fleet CA with its enrolment provisioners and revocation
(modules at this level), and the V2X PKI (``fleetid.authority.v2x``).
"""
