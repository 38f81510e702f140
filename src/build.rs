//! Image builds: context tar streams, digests, build through the Docker API, push.
