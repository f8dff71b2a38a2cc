using System.Globalization;
using System.Text.Json;
using DreamBooth.Loading;
using DreamBooth.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>
/// The UNet stage's resumable state — the trained UNet and text encoder (float32), the EMA weights, the optimizer's
/// state, the random generator, the step, the running and tail losses and the options — in one safetensors file beside
/// the output folder (<c>&lt;out&gt;.pretrain-state.safetensors</c>, written atomically). It is written with every
/// snapshot and when a run is cancelled, read by <see cref="TinyWorldPretraining.Run"/> with <c>resume</c>, and deleted
/// when the run completes. A resumed run with the same thread count gives the same weights, bit for bit, as an
/// uninterrupted one (another thread count changes the float rounding of libtorch's reductions, nothing else).
/// </summary>
public sealed class PretrainState : IDisposable
{
    /// <summary>UNet steps done.</summary>
    public required int Step { get; init; }
    public required double Running { get; init; }
    public required IReadOnlyList<double> Tail { get; init; }
    public required double TextLoss { get; init; }
    public required Dictionary<string, Tensor> Tensors { get; init; }

    /// <summary>The state file of a run that writes <paramref name="outputFolder"/>.</summary>
    public static string PathFor(string outputFolder) =>
        Path.GetFullPath(outputFolder).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar) + ".pretrain-state.safetensors";

    /// <summary>The options a state must have been written with to be resumed (threads and snapshot cadence may change).</summary>
    static string Fingerprint(PretrainOptions o) => JsonSerializer.Serialize(o with { Threads = 0, SnapshotEvery = 0, TokenizerFolder = null }, ConfigJson.Options);

    public static void Save(string path, PretrainOptions options, int step, double running, IReadOnlyList<double> tail, double textLoss,
        nn.Module unet, nn.Module te, IReadOnlyList<Tensor> ema, IReadOnlyDictionary<string, Tensor> optimizer, Tensor generator)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in unet.state_dict()) tensors["unet." + k] = v;
        foreach (var (k, v) in te.state_dict()) tensors["text_encoder." + k] = v;
        for (int i = 0; i < ema.Count; i++) tensors[$"ema.{i.ToString(CultureInfo.InvariantCulture)}"] = ema[i];
        foreach (var (k, v) in optimizer) tensors["optimizer." + k] = v;
        tensors["rng.generator"] = generator;
        var meta = new Dictionary<string, string>
        {
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["running"] = running.ToString("R", CultureInfo.InvariantCulture),
            ["tail"] = JsonSerializer.Serialize(tail),
            ["text_loss"] = textLoss.ToString("R", CultureInfo.InvariantCulture),
            ["options"] = Fingerprint(options),
        };
        Safetensors.Save(path, tensors, meta);
    }

    /// <summary>Reads the state at <paramref name="path"/>; throws, naming the file and the fix, when it was written with other options.</summary>
    public static PretrainState Load(string path, PretrainOptions options)
    {
        var header = Safetensors.ReadHeader(path);
        string Meta(string key) => header.Metadata.TryGetValue(key, out var v) ? v
            : throw new InvalidDataException($"{path} is not a pretraining state (no '{key}' in its metadata); delete it to start over.");
        if (Meta("options") != Fingerprint(options))
            throw new InvalidOperationException($"{path} was written by a run with other options ({Differences(Meta("options"), Fingerprint(options))}); "
                + "resume with the same options (only --threads and --snapshot-every may change), or delete the file to start over.");
        double Num(string key) => double.Parse(Meta(key), NumberStyles.Float, CultureInfo.InvariantCulture);
        return new PretrainState
        {
            Step = int.Parse(Meta("step"), CultureInfo.InvariantCulture),
            Running = Num("running"),
            Tail = JsonSerializer.Deserialize<List<double>>(Meta("tail")) ?? [],
            TextLoss = Num("text_loss"),
            Tensors = Safetensors.Load(path),
        };
    }

    /// <summary>"Name: recorded → now" for each option whose value differs.</summary>
    static string Differences(string recordedJson, string currentJson)
    {
        var recorded = System.Text.Json.Nodes.JsonNode.Parse(recordedJson)!.AsObject();
        var current = System.Text.Json.Nodes.JsonNode.Parse(currentJson)!.AsObject();
        var names = recorded.Select(kv => kv.Key).Union(current.Select(kv => kv.Key)).Order(StringComparer.Ordinal);
        string Text(System.Text.Json.Nodes.JsonNode? n) => n?.ToJsonString() ?? "(none)";
        var diffs = names.Where(n => Text(recorded[n]) != Text(current[n])).Select(n => $"{n}: {Text(recorded[n])} → {Text(current[n])}").ToList();
        return diffs.Count == 0 ? "recorded in another format" : string.Join("; ", diffs);
    }

    /// <summary>The tensors saved under <paramref name="prefix"/>, with the prefix removed.</summary>
    public Dictionary<string, Tensor> Part(string prefix) =>
        Tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}
