using System.Text;
using DreamBooth.Imaging.Import;
using DreamBooth.Loading;
using DreamBooth.Text;

namespace DreamBooth.Notebooks;

/// <summary>HTML renderings of the engine's reports (what the registered formatters write).</summary>
public static class ReportHtml
{
    const string Table = "<table style=\"border-collapse:collapse;font-size:13px\">";
    const string Th = "<th style=\"text-align:left;padding:2px 8px;border-bottom:1px solid #999\">";
    const string Td = "<td style=\"text-align:left;vertical-align:top;padding:2px 8px;border-bottom:1px solid #ddd\">";

    /// <summary>A model folder's components as a table: class, weights file and size, dtypes, parameter counts (file vs config) and key config values.</summary>
    public static string ModelInspection(ModelInspection inspection)
    {
        ArgumentNullException.ThrowIfNull(inspection);
        var sb = new StringBuilder();
        sb.Append("<div><b>").Append(NotebookHtml.Enc(inspection.Folder)).Append("</b> (").Append(NotebookHtml.Enc(inspection.Kind)).Append(")</div>");
        sb.Append(Table).Append("<thead><tr>");
        foreach (var h in new[] { "component", "class", "weights", "dtypes", "parameters", "config" }) sb.Append(Th).Append(h).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        foreach (var c in inspection.Components)
        {
            sb.Append("<tr>").Append(Td).Append("<b>").Append(NotebookHtml.Enc(c.Name)).Append("</b></td>").Append(Td).Append(NotebookHtml.Enc(c.ClassName)).Append("</td>");
            if (c.Problem is not null)
            {
                sb.Append("<td colspan=\"4\" style=\"color:#b00020;padding:2px 8px\">problem: ").Append(NotebookHtml.Enc(c.Problem)).Append("</td></tr>");
                continue;
            }
            sb.Append(Td).Append(c.WeightsFile is null ? "—" : $"{NotebookHtml.Enc(Path.GetFileName(c.WeightsFile))} ({NotebookHtml.Enc(Loading.ModelInspection.FormatBytes(c.WeightsBytes))})").Append("</td>");
            sb.Append(Td).Append(NotebookHtml.Enc(string.Join(", ", c.TensorsByDType.Select(kv => $"{kv.Key} × {kv.Value}")))).Append("</td>");
            sb.Append(Td);
            if (c.WeightsFile is not null) sb.Append(NotebookHtml.Enc($"{c.ParametersInFile:N0}"));
            if (c.ParametersFromConfig is long p)
            {
                if (c.WeightsFile is null) sb.Append(NotebookHtml.Enc($"{p:N0} (config)"));
                else if (p == c.ParametersInFile) sb.Append(" <span style=\"color:#1a7f37\" title=\"the config's architecture has exactly the file's parameters\">✓ matches config</span>");
                else sb.Append(" <span style=\"color:#b00020\">≠ config ").Append(NotebookHtml.Enc($"{p:N0}")).Append("</span>");
            }
            sb.Append("</td>").Append(Td);
            foreach (var (k, v) in c.Summary) sb.Append("<div><span style=\"color:#555\">").Append(NotebookHtml.Enc(k)).Append(":</span> ").Append(NotebookHtml.Enc(v)).Append("</div>");
            sb.Append("</td></tr>");
        }
        sb.Append("</tbody></table>");
        return sb.ToString();
    }

    static string SeverityColor(IssueSeverity s) => s switch
    {
        IssueSeverity.Error => "#b00020",
        IssueSeverity.Warning => "#b26a00",
        _ => "#555",
    };

    /// <summary>An instance-image import: counts, the steps recommendation, and one row per file with a thumbnail of what was written and its issues.</summary>
    public static string ImportReport(ImportReport report, int thumbnailSize = 96)
    {
        ArgumentNullException.ThrowIfNull(report);
        var s = report.Summary;
        var sb = new StringBuilder();
        sb.Append("<div style=\"margin-bottom:4px\"><b>").Append(s.Imported).Append(" imported</b>, ").Append(s.Skipped).Append(" skipped, ")
          .Append(s.Warnings).Append(" warnings → ").Append(NotebookHtml.Enc(report.Destination)).Append("</div>");
        sb.Append("<div style=\"margin-bottom:6px\">").Append(StepsRecommendation(report.Steps)).Append("</div>");
        sb.Append(Table).Append("<thead><tr>");
        foreach (var h in new[] { "image", "file", "status", "size", "sharpness", "caption", "issues" }) sb.Append(Th).Append(h).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        foreach (var img in report.Images)
        {
            sb.Append("<tr>").Append(Td);
            using (var thumb = NotebookHtml.Thumbnail(img.OutputPath, thumbnailSize))
                if (thumb != null) sb.Append(NotebookHtml.Img(thumb, Math.Min(thumbnailSize, Math.Max(thumb.Width, 48)), Path.GetFileName(img.OutputPath)));
            sb.Append("</td>").Append(Td).Append(NotebookHtml.Enc(img.SourcePath)).Append("</td>");
            bool ok = img.Status == ImportStatus.Imported;
            sb.Append(Td).Append(ok ? NotebookHtml.Chip("imported", "#d7f5dd", monospace: false) : NotebookHtml.Chip("skipped", "#ffd9de", monospace: false)).Append("</td>");
            sb.Append(Td).Append(img.Width > 0 ? $"{img.Width}×{img.Height}" : "").Append("</td>");
            sb.Append(Td).Append(img.Sharpness is { } sh ? NotebookHtml.Num(sh, "0") : "").Append("</td>");
            sb.Append(Td).Append(NotebookHtml.Enc(img.Caption ?? "")).Append("</td>").Append(Td);
            foreach (var issue in img.Issues)
                sb.Append("<div style=\"color:").Append(SeverityColor(issue.Severity)).Append("\">")
                  .Append(NotebookHtml.Enc(issue.Severity.ToString().ToLowerInvariant())).Append(": ").Append(NotebookHtml.Enc(issue.Message)).Append("</div>");
            sb.Append("</td></tr>");
        }
        sb.Append("</tbody></table>");
        return sb.ToString();
    }

    /// <summary>The steps recommendation: number, range, reasoning and warnings.</summary>
    public static string StepsRecommendation(StepsRecommendation steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var sb = new StringBuilder();
        sb.Append("<b>Steps: ").Append(steps.RecommendedSteps).Append("</b> (range ").Append(steps.LowSteps).Append('–').Append(steps.HighSteps)
          .Append(", rule ").Append(NotebookHtml.Enc(steps.Rule.ToString())).Append(") <span style=\"color:#555\">").Append(NotebookHtml.Enc(steps.Explanation)).Append("</span>");
        foreach (var w in steps.Warnings) sb.Append("<div style=\"color:#b26a00\">warning: ").Append(NotebookHtml.Enc(w)).Append("</div>");
        return sb.ToString();
    }

    /// <summary>The negative-prompt presets as a table: name, what it is for, and the start of its text.</summary>
    public static string NegativePromptPresets(DreamBooth.Imaging.NegativePromptPresets presets)
    {
        ArgumentNullException.ThrowIfNull(presets);
        var sb = new StringBuilder(Table).Append("<thead><tr>").Append(Th).Append("preset</th>").Append(Th).Append("what it is for</th>").Append(Th).Append("text</th></tr></thead><tbody>");
        foreach (var p in presets.All)
        {
            var text = p.Text.Length > 90 ? p.Text[..87] + "…" : p.Text;
            sb.Append("<tr>").Append(Td).Append("<b>").Append(NotebookHtml.Enc(p.Name)).Append("</b></td>").Append(Td).Append(NotebookHtml.Enc(p.Description)).Append("</td>")
              .Append(Td).Append("<span style=\"color:#555;font-size:12px\" title=\"").Append(NotebookHtml.Enc(p.Text)).Append("\">").Append(NotebookHtml.Enc(text.Length == 0 ? "(empty)" : text)).Append("</span></td></tr>");
        }
        return sb.Append("</tbody></table>").ToString();
    }

    /// <summary>Chip colour for a verdict.</summary>
    public static string VerdictColor(IdentifierVerdict verdict) => verdict switch
    {
        IdentifierVerdict.Good => "#c8f0d0",
        IdentifierVerdict.Caution => "#ffe7b3",
        _ => "#ffc9d0",
    };

    /// <summary>How an identifier tokenizes: one chip per BPE piece (red: a common word piece, green: rare), the verdict, reasons and rare alternatives.</summary>
    public static string IdentifierReport(IdentifierReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        sb.Append("<div><b>").Append(NotebookHtml.Enc(report.Identifier)).Append("</b> → ");
        foreach (var p in report.Pieces)
            sb.Append(NotebookHtml.Chip(p.Token, p.IsCommon ? "#ffc9d0" : "#c8f0d0",
                $"id {p.Id}, merge rank {(p.MergeRank?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (single symbol)")}{(p.IsCommon ? ", common word piece" : ", rare")}"));
        sb.Append(' ').Append(NotebookHtml.Chip(report.Verdict.ToString(), VerdictColor(report.Verdict), monospace: false)).Append("</div>");
        if (report.Reasons.Count > 0)
        {
            sb.Append("<ul style=\"margin:4px 0\">");
            foreach (var r in report.Reasons) sb.Append("<li>").Append(NotebookHtml.Enc(r)).Append("</li>");
            sb.Append("</ul>");
        }
        if (report.Alternatives.Count > 0)
        {
            sb.Append("<div>rare alternatives: ");
            foreach (var a in report.Alternatives) sb.Append(NotebookHtml.Chip(a, "#e6ecff"));
            sb.Append("</div>");
        }
        return sb.ToString();
    }
}
