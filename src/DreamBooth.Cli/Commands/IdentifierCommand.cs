using System.CommandLine;
using System.Text;
using DreamBooth.Loading;
using DreamBooth.Loading.Hub;
using DreamBooth.Text;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth identifier</c>: how a candidate rare identifier splits into CLIP tokens and whether it is a good choice.</summary>
public static class IdentifierCommand
{
    public static Command Create()
    {
        var word = new Argument<string>("word") { Description = "The identifier to check, e.g. llmcbrrrqqdpj." };
        var model = new Option<string>("--model", "-m") { Description = "Whose tokenizer: a diffusers folder, a tokenizer folder (vocab.json + merges.txt) or a hub repo id.", DefaultValueFactory = _ => CliPaths.DefaultModel };
        var count = new Option<int>("--alternatives") { Description = "How many rare alternatives to suggest.", DefaultValueFactory = _ => 5 };
        var cmd = new Command("identifier", "Check a DreamBooth identifier against the model's CLIP tokenizer (pieces, common words, verdict) and suggest rare alternatives.") { word, model, count };
        cmd.SetAction(pr =>
        {
            var tok = LoadTokenizer(CliPaths.Resolve(pr.GetValue(model)!));
            var report = IdentifierCheck.Check(tok, pr.GetValue(word)!, new IdentifierCheckOptions { Alternatives = pr.GetValue(count) });
            Cli.Out.Write(Format(report));
            return 0;
        });
        return cmd;
    }

    /// <summary>The tokenizer of a model folder, a tokenizer folder, or a hub repo (only the two tokenizer files are fetched).</summary>
    public static ClipTokenizer LoadTokenizer(string source)
    {
        if (Directory.Exists(source)) return ClipTokenizer.FromFolder(source);
        if (File.Exists(source))
            throw new CliException($"{source} is a file; the tokenizer comes from a folder with vocab.json and merges.txt (or a diffusers model folder)");
        if (ModelSource.Classify(source) == ModelSourceKind.HubRepo)
        {
            using var client = new HubClient(new HubOptions(), line => Cli.Err.WriteLine(line));
            var vocab = client.DownloadFileAsync(source, "tokenizer/vocab.json", ct: Cli.Cancellation).GetAwaiter().GetResult();
            var merges = client.DownloadFileAsync(source, "tokenizer/merges.txt", ct: Cli.Cancellation).GetAwaiter().GetResult();
            return ClipTokenizer.FromFiles(vocab, merges, Path.GetDirectoryName(vocab));
        }
        throw new CliException($"{source}: not a tokenizer folder");
    }

    /// <summary>The report as text: pieces, verdict, reasons, alternatives.</summary>
    public static string Format(IdentifierReport r)
    {
        var sb = new StringBuilder();
        sb.Append($"'{r.Identifier}': {r.Verdict.ToString().ToUpperInvariant()} ({r.Pieces.Count} token{(r.Pieces.Count == 1 ? "" : "s")})\n");
        foreach (var p in r.Pieces)
            sb.Append($"  {p.Token,-20} id {p.Id,6}  merge rank {(p.MergeRank is { } m ? m.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-"),6}{(p.IsCommon ? "  common word piece" : "")}\n");
        foreach (var reason in r.Reasons) sb.Append("  ").Append(reason).Append('\n');
        if (r.Alternatives.Count > 0)
            sb.Append("Rare alternatives: ").Append(string.Join(", ", r.Alternatives)).Append('\n');
        return sb.ToString();
    }
}
