"""Reports of reconstruction quality: metric tables and example reconstructions.

One writer for every report of the package, used by single-clip fitting
(:mod:`fewsound_sb.fitting`: ``summary.md`` / ``summary.csv``,
``results.csv``, the per-clip wavs and figures) and by hypernetwork
evaluation (:class:`fewsound_sb.brains.FewSoundBrain`: ``<stage>_epoch<N>.md``
/ ``.csv`` and the example folder):

* :func:`write_metric_table`: a Markdown page (mean ± std per metric, in the
  paper's Table 1 column order, :func:`fewsound_sb.metrics.format_table`) and
  a CSV with one row per metric (mean, std, number of clips);
* :func:`write_rows_csv`: one CSV row per clip;
* :func:`write_example`: reference and reconstruction as wav files and a
  waveform + log-mel figure (:func:`fewsound_sb.plotting.plot_reconstruction`).

Every file is written atomically (:mod:`fewsound_sb.files`).
"""

import csv
import io
import math

from fewsound_sb.dataio import write_audio
from fewsound_sb.files import write_text
from fewsound_sb.metrics import format_table

SUMMARY_COLUMNS = ("metric", "mean", "std", "n_clips")
# Metrics named in a figure title, with their format.
TITLE_METRICS = (("psnr", "PSNR", "{:.1f} dB"), ("pesq", "PESQ", "{:.2f}"),
                 ("lsd", "LSD", "{:.2f}"), ("si_snr", "SI-SNR", "{:.1f}"))


def _csv_value(value):
    """Floats at full precision (``repr``); NaN/inf as ``nan``/``inf``."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def _csv_text(columns, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k, "")) for k in columns})
    return buffer.getvalue()


def write_rows_csv(path, rows, columns):
    """Writes one CSV row per item (e.g. per clip).

    Arguments
    ---------
    path : str
        Output ``.csv`` file.
    rows : list of dict
        One dict per item; keys not in ``columns`` are ignored, missing ones
        are left empty.
    columns : list of str
        Column order.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "results.csv")
    >>> write_rows_csv(path, [{"id": "a", "psnr": 31.25, "x": 1}, {"id": "b"}], ["id", "psnr"])
    >>> open(path).read().splitlines()
    ['id,psnr', 'a,31.25', 'b,']
    """
    write_text(path, _csv_text(columns, rows), newline="")


def write_metric_table(md_path, csv_path, summary, title, heading, n_clips, intro="",
                       notes=(), meta=None):
    """Writes the mean ± std metric table as Markdown and as CSV.

    Arguments
    ---------
    md_path : str
        Markdown file: ``# heading``, ``intro``, the table, and a Notes list.
    csv_path : str or None
        CSV file with the columns ``meta`` keys + metric, mean, std, n_clips
        (one row per metric); None: no CSV.
    summary : dict
        ``metric -> (mean, std)`` (:func:`fewsound_sb.metrics.summarize`).
    title : str
        Row label of the table (the model's name).
    heading : str
        Page title.
    n_clips : int
        Clips the means are over.
    intro : str
        Paragraph under the heading (settings of the run).
    notes : list of str
        Bullet points under "## Notes" (clips that failed, were padded...).
    meta : dict or None
        Columns repeated on every CSV row (model, stage, epoch...).

    Returns
    -------
    str
        The Markdown table (for the log).

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> md, cs = os.path.join(folder, "t.md"), os.path.join(folder, "t.csv")
    >>> _ = write_metric_table(md, cs, {"psnr": (30.0, 1.5)}, "KAN", "Fits", 2,
    ...                        notes=["`c` failed"], meta={"model": "KAN"})
    >>> lines = open(md, encoding="utf-8").read().splitlines()
    >>> lines[0], lines[-1]
    ('# Fits', '- `c` failed')
    >>> open(cs).read().splitlines()
    ['model,metric,mean,std,n_clips', 'KAN,psnr,30.0,1.5,2']
    """
    table = format_table(summary, title=title)
    lines = [f"# {heading}", ""]
    if intro:
        lines += [intro, ""]
    lines += [table, ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    write_text(md_path, "\n".join(lines))
    if csv_path is not None:
        meta = dict(meta or {})
        rows = [{**meta, "metric": metric, "mean": float(mean), "std": float(std),
                 "n_clips": int(n_clips)} for metric, (mean, std) in summary.items()]
        write_rows_csv(csv_path, rows, list(meta) + list(SUMMARY_COLUMNS))
    return table


def figure_title(item_id, row):
    """``"<id> | PSNR 31.2 dB | PESQ 2.10 | ..."`` from the metrics in ``row``.

    Example
    -------
    >>> figure_title("p225", {"psnr": 31.234, "pesq": float("nan"), "lsd": 1.5})
    'p225 | PSNR 31.2 dB | LSD 1.50'
    """
    parts = [str(item_id)]
    for key, name, fmt in TITLE_METRICS:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{name} {fmt.format(value)}")
    return " | ".join(parts)


def write_example(reference, estimate, sample_rate, ref_path, rec_path, figure_path=None,
                  title=""):
    """Writes one example reconstruction: two wavs and (optionally) a figure.

    Samples are clipped to [-1, 1] for the wav files; the figure shows the
    waveforms and log-mel spectrograms, reference above reconstruction.

    Arguments
    ---------
    reference : torch.Tensor
        ``[T]`` original.
    estimate : torch.Tensor
        ``[T]`` reconstruction.
    sample_rate : int
        Sample rate in Hz.
    ref_path, rec_path : str
        Output audio files (format from the extension).
    figure_path : str or None
        Output PNG; None: no figure.
    title : str
        Figure title (:func:`figure_title`).

    Example
    -------
    >>> import os, tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> x = torch.sin(torch.linspace(0, 300, 2048))
    >>> write_example(x, 0.9 * x, 8000, os.path.join(folder, "a_ref.wav"),
    ...               os.path.join(folder, "a_rec.wav"), os.path.join(folder, "a.png"))
    >>> sorted(os.listdir(folder))
    ['a.png', 'a_rec.wav', 'a_ref.wav']
    """
    write_audio(ref_path, reference.clamp(-1.0, 1.0), sample_rate)
    write_audio(rec_path, estimate.clamp(-1.0, 1.0), sample_rate)
    if figure_path is not None:
        # imported here: plotting selects matplotlib's Agg backend, which
        # importers of this module (e.g. the Brain) should not get for free
        from fewsound_sb.plotting import plot_reconstruction

        plot_reconstruction(reference, estimate, sample_rate, figure_path, title=title)
