using System.Globalization;
using System.Text.Json;
using DreamBooth.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>The non-tensor part of a training checkpoint.</summary>
public sealed record CheckpointInfo
{
    public int Step { get; init; }

    /// <summary>Steps the text encoder has been trained for (it is frozen after <see cref="TrainingOptions.TextEncoderSteps"/>).</summary>
    public int TextEncoderStepsDone { get; init; }

    /// <summary>Micro-batches consumed (the data-order position: the epoch permutation and index follow from it).</summary>
    public long SamplesSeen { get; init; }

    public TrainingOptions Options { get; init; } = new();

    /// <summary>The base model the weights were trained from.</summary>
    public string BaseModel { get; init; } = "";

    /// <summary>"full" or "lora".</summary>
    public string Kind { get; init; } = "full";

    public DateTime Saved { get; init; } = DateTime.UtcNow;

    public double? LastLoss { get; init; }
}

/// <summary>A checkpoint read back from disk. The caller owns (and disposes) the tensors.</summary>
public sealed record Checkpoint(string Folder, CheckpointInfo Info, Dictionary<string, Tensor> Weights,
    Dictionary<string, Tensor> OptimizerState, Dictionary<string, Tensor> RngState) : IDisposable
{
    public void Dispose()
    {
        foreach (var d in new[] { Weights, OptimizerState, RngState })
            foreach (var t in d.Values) t.Dispose();
    }
}

/// <summary>
/// Training checkpoints as self-describing folders <c>step-000500/</c> holding trained weights, optimizer state, RNG
/// state and <c>state.json</c>. A checkpoint is written into a hidden temp folder and renamed into place, so a process
/// killed mid-save leaves the previous checkpoints untouched and never a half-written one under a real name.
/// </summary>
public static class CheckpointStore
{
    public const string WeightsFile = "weights.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string RngFile = "rng.safetensors";
    public const string StateFile = "state.json";

    static readonly JsonSerializerOptions Json = DreamBoothSession.JsonOptions;

    public static string FolderName(int step) => $"step-{step.ToString("D6", CultureInfo.InvariantCulture)}";

    /// <summary>Writes a checkpoint atomically, then deletes all but the newest <paramref name="keep"/>. Returns its folder.</summary>
    public static string Write(string checkpointsFolder, CheckpointInfo info, IReadOnlyDictionary<string, Tensor> weights,
        IReadOnlyDictionary<string, Tensor> optimizerState, IReadOnlyDictionary<string, Tensor> rngState, int keep,
        Action<string>? beforeRename = null)
    {
        Directory.CreateDirectory(checkpointsFolder);
        var final = Path.Combine(checkpointsFolder, FolderName(info.Step));
        var tmp = Path.Combine(checkpointsFolder, $".{FolderName(info.Step)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(tmp);
        try
        {
            Safetensors.Save(Path.Combine(tmp, WeightsFile), weights, new Dictionary<string, string> { ["format"] = "pt", ["kind"] = info.Kind });
            Safetensors.Save(Path.Combine(tmp, OptimizerFile), optimizerState);
            Safetensors.Save(Path.Combine(tmp, RngFile), rngState);
            AtomicFile.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(info, Json) + "\n");
            beforeRename?.Invoke(tmp);
            if (Directory.Exists(final))
            {
                // same step written again (e.g. a retrain): move the old one aside first, then delete it
                var old = final + $".old-{Guid.NewGuid():N}";
                Directory.Move(final, old);
                Directory.Move(tmp, final);
                Directory.Delete(old, true);
            }
            else
            {
                Directory.Move(tmp, final);
            }
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
        Prune(checkpointsFolder, keep, final);
        return final;
    }

    /// <summary>Complete checkpoint folders, oldest first (stale temp folders are ignored).</summary>
    public static IReadOnlyList<(int Step, string Folder)> List(string checkpointsFolder)
    {
        if (!Directory.Exists(checkpointsFolder)) return [];
        var result = new List<(int, string)>();
        foreach (var d in Directory.EnumerateDirectories(checkpointsFolder))
        {
            var name = Path.GetFileName(d);
            if (!name.StartsWith("step-", StringComparison.Ordinal) || name.Contains(".old-", StringComparison.Ordinal)) continue;
            if (!int.TryParse(name.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int step)) continue;
            if (!File.Exists(Path.Combine(d, StateFile))) continue;
            result.Add((step, d));
        }
        return result.OrderBy(r => r.Item1).ToList();
    }

    /// <summary>Reads the newest complete checkpoint, or null when there is none.</summary>
    public static Checkpoint? LoadLatest(string checkpointsFolder)
    {
        var all = List(checkpointsFolder);
        return all.Count == 0 ? null : Load(all[^1].Folder);
    }

    public static CheckpointInfo ReadInfo(string folder)
    {
        var statePath = Path.Combine(folder, StateFile);
        if (!File.Exists(statePath)) throw new ModelLoadException(folder, "not a training checkpoint (state.json is missing)");
        try
        {
            return JsonSerializer.Deserialize<CheckpointInfo>(File.ReadAllText(statePath), Json)
                   ?? throw new ModelLoadException(statePath, "state.json is empty");
        }
        catch (JsonException e) { throw new ModelLoadException(statePath, $"state.json is not valid: {e.Message}", e); }
    }

    public static Checkpoint Load(string folder)
    {
        var info = ReadInfo(folder);
        var w = Safetensors.Load(Path.Combine(folder, WeightsFile));
        try
        {
            var o = Safetensors.Load(Path.Combine(folder, OptimizerFile));
            var r = Safetensors.Load(Path.Combine(folder, RngFile));
            return new Checkpoint(folder, info, w, o, r);
        }
        catch
        {
            foreach (var t in w.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Deletes stale temp folders and all but the newest <paramref name="keep"/> checkpoints (never <paramref name="protect"/>).</summary>
    public static void Prune(string checkpointsFolder, int keep, string? protect = null)
    {
        foreach (var d in Directory.EnumerateDirectories(checkpointsFolder))
        {
            var name = Path.GetFileName(d);
            bool staleTmp = name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal) && !name.Contains($".{Environment.ProcessId}.", StringComparison.Ordinal);
            if (staleTmp || name.Contains(".old-", StringComparison.Ordinal)) TryDelete(d);
        }
        var all = List(checkpointsFolder);
        foreach (var (_, folder) in all.Take(Math.Max(0, all.Count - keep)))
            if (!string.Equals(Path.GetFullPath(folder), protect is null ? null : Path.GetFullPath(protect), StringComparison.Ordinal))
                TryDelete(folder);
    }

    static void TryDelete(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
