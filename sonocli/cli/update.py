"""``sonocli update-system``: install a signed update image (guide 7.1), and ``make-image`` for maintainers.

``update-system`` takes an optional IMAGE *and* has a subcommand. click cannot express "optional
argument or subcommand" on a group (the argument would swallow the subcommand's name), so
:class:`ImageOrCommandGroup` looks at the first positional word itself: a subcommand name dispatches to
the subcommand, anything else is taken as IMAGE and the group's own callback runs. A file literally
named like a subcommand can still be installed as ``./make-image``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sonocli.cli.context import CliContext

_IMAGE_PARAM = click.Argument(["image"], required=False)
_IMAGE_TYPE = click.Path(exists=True, dir_okay=False, path_type=Path)


class ImageOrCommandGroup(click.Group):
    """A group whose first positional word is a subcommand name or else the optional IMAGE argument."""

    #: read by scripts/gen_docs.py so the man page and completions show the positional argument
    extra_positional = ("IMAGE", "file")

    def _value_options(self) -> set[str]:
        names: set[str] = set()
        for param in self.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                names.update(param.opts)
        return names

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        value_options = self._value_options()
        image: str | None = None
        rest: list[str] = []
        skip = False
        positional_only = False
        for index, token in enumerate(args):
            if skip:
                rest.append(token)
                skip = False
                continue
            if not positional_only and token == "--":
                positional_only = True
                continue
            if not positional_only and token.startswith("-") and token != "-":
                rest.append(token)
                skip = token in value_options
                continue
            if image is None and token in self.commands and not positional_only:
                rest.extend(args[index:])  # the subcommand parses the rest itself
                break
            if image is not None:
                raise click.UsageError(f"unexpected extra argument {token!r} after IMAGE {image!r}", ctx=ctx)
            image = token
        remaining = super().parse_args(ctx, rest)
        ctx.params["image"] = _IMAGE_TYPE.convert(image, _IMAGE_PARAM, ctx) if image is not None else None
        return remaining

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]", "[IMAGE] | COMMAND [ARGS]..."]


def _prefix_help() -> str:
    return (
        "Installation prefix holding versions/<version>/, the 'current' symlink and bin/sonocli; default: "
        "the prefix this sonocli runs from, else /opt/sonocli [env: SONOCLI_PREFIX]."
    )


@click.group(
    "update-system",
    cls=ImageOrCommandGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--dry-run", is_flag=True, help="Verify the image (signature, hash, version) and change nothing.")
@click.option(
    "--allow-downgrade", is_flag=True, help="Install an image that is older than (or equal to) the installed version."
)
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SONOCLI_PREFIX",
    default=None,
    help=_prefix_help(),
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def update_system(
    ctx: click.Context, dry_run: bool, allow_downgrade: bool, prefix: Path | None, as_json: bool, image: Path | None
) -> None:
    """Install a signed sonocli update image (the device's software update).

    IMAGE defaults to the one file in ext/Upd/ below the root (exactly one image may reside there). The
    image's Ed25519 signature is checked with app/update-pubkey.pem, then the SHA-256 of the wheel it
    carries, then its version: older or equal versions are refused unless --allow-downgrade.

    \b
    Layout below PREFIX:
      versions/<version>/lib/    the installed sonocli (pip install --target)
      current -> versions/<v>    switched atomically (rename of a symlink)
      previous -> versions/<v>   the version before (the only other one kept)
      bin/sonocli                launcher for the current version

    The new version is installed next to the old one and must pass a self-check (`sonocli --version`
    prints the manifest's version, the packages it requires are installed) before and after the switch; any failure
    leaves or puts back the old version. app/ (the configuration) is never touched. Restart the daemon
    afterwards (sonocli service restart-daemon). The image stays in ext/Upd/; delete it before uploading
    the next one. To install a file named like a subcommand, write it as ./make-image.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sonocli.engine.configuration import RootLayout
    from sonocli.service.image import PUBKEY_NAME, find_image, verify_image
    from sonocli.service.installer import check_version, default_prefix, install_image, installed_version

    obj = ctx.find_object(CliContext)
    layout = RootLayout(obj.root if obj else CliContext().root)
    image_path = image if image is not None else find_image(layout.upd_dir)
    prefix = prefix if prefix is not None else default_prefix()

    def say(message: str) -> None:
        if not as_json:
            click.echo(f"update-system: {message}")

    say(f"verifying {image_path}")
    verified = verify_image(image_path, layout.app / PUBKEY_NAME)
    manifest = verified.manifest
    say(
        f"signature OK (key {verified.key_fingerprint[:16]}), sha256 {manifest.sha256[:16]} OK, "
        f"sonocli {manifest.version}"
    )
    from sonocli import __version__

    installed = installed_version(prefix)
    result: dict[str, Any] = {
        "image": str(image_path),
        "version": manifest.version,
        "sha256": manifest.sha256,
        "key_fingerprint": verified.key_fingerprint,
        "prefix": str(prefix),
        "installed_version": installed,
        "dry_run": dry_run,
    }
    if dry_run:
        check_version(manifest.version, installed or __version__, allow_downgrade=allow_downgrade)
        say(f"dry run: would install {manifest.version} into {prefix} (installed: {installed or 'none'})")
        if as_json:
            from sonocli.cli.output import emit_json

            emit_json(result)
        return
    outcome = install_image(verified, prefix, allow_downgrade=allow_downgrade, log=say)
    result.update(
        installed_version=outcome.version,
        previous_version=outcome.previous,
        directory=str(outcome.directory),
        launcher=str(outcome.launcher),
    )
    if as_json:
        from sonocli.cli.output import emit_json

        emit_json(result)
        return
    say(f"installed sonocli {outcome.version} (was {outcome.previous or 'none'}); run it as {outcome.launcher}")
    say("restart the daemon to use it: sonocli service restart-daemon")


@update_system.command("make-image")
@click.option(
    "--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The sonocli wheel to ship."
)
@click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Ed25519 private key (PEM) to sign with; with --generate-key, where to create it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image file to write (*.sonoimg); with --generate-key, the public key file [default: KEY with .pub.pem].",
)
@click.option("--generate-key", is_flag=True, help="Create a new signing key pair instead of an image.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def make_image_cmd(wheel: Path | None, key: Path, output: Path | None, generate_key: bool, as_json: bool) -> None:
    """Build and sign an update image from a wheel (for maintainers).

    \b
    sonocli update-system make-image --generate-key --key signing.pem
    sonocli update-system make-image --wheel dist/sonocli-1.2.0-py3-none-any.whl \\
        --key signing.pem -o sonocli-1.2.0.sonoimg

    Install the public key (signing.pub.pem) on each concentrator as app/update-pubkey.pem.
    """
    from sonocli.cli.output import emit_json
    from sonocli.service.image import generate_signing_key, make_image

    if generate_key:
        if wheel is not None:
            raise click.UsageError("--generate-key creates a key pair; it takes no --wheel")
        public = output if output is not None else key.with_name(key.name.removesuffix(".pem") + ".pub.pem")
        fingerprint = generate_signing_key(key, public)
        if as_json:
            emit_json({"private_key": str(key), "public_key": str(public), "fingerprint": fingerprint})
        else:
            click.echo(f"private key: {key} (keep it secret)")
            click.echo(f"public key:  {public} (install as app/update-pubkey.pem)")
            click.echo(f"fingerprint: {fingerprint}")
        return
    if wheel is None or output is None:
        raise click.UsageError("make-image needs --wheel and -o/--output (or --generate-key)")
    manifest = make_image(wheel, key, output)
    if as_json:
        emit_json(
            {
                "image": str(output),
                "version": manifest.version,
                "sha256": manifest.sha256,
                "wheel": manifest.wheel,
                "size": manifest.size,
            }
        )
    else:
        click.echo(f"wrote {output}: sonocli {manifest.version}, wheel sha256 {manifest.sha256}")
