using System.Text.Json;
using System.Text.Json.Nodes;

namespace DreamBooth.Loading.SingleFile;

/// <summary>
/// Reads a diffusers/transformers <c>config.json</c> (or <c>scheduler_config.json</c>) into a
/// <see cref="JsonObject"/> and checks that the fields a consumer needs are there. Any problem (missing
/// file, too large, invalid JSON, not an object, missing or null field) is a <see cref="ModelLoadException"/>
/// naming the file and the field; the typed config records are built from the result elsewhere.
/// </summary>
public static class ConfigJson
{
    /// <summary>Largest config accepted; real ones are a few kilobytes.</summary>
    public const long MaxBytes = 4 << 20;

    /// <summary>Fields a UNet2DConditionModel config must have.</summary>
    public static readonly IReadOnlyList<string> UnetRequired =
        ["block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim", "in_channels", "out_channels"];

    /// <summary>Fields an AutoencoderKL config must have.</summary>
    public static readonly IReadOnlyList<string> VaeRequired =
        ["block_out_channels", "layers_per_block", "latent_channels", "in_channels", "out_channels"];

    /// <summary>Fields a CLIPTextModel config must have.</summary>
    public static readonly IReadOnlyList<string> TextEncoderRequired =
        ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size", "max_position_embeddings"];

    /// <summary>Fields a scheduler config must have.</summary>
    public static readonly IReadOnlyList<string> SchedulerRequired =
        ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule"];

    /// <summary>Reads and checks one config file.</summary>
    public static JsonObject Read(string path, IReadOnlyList<string> required)
    {
        if (Directory.Exists(path))
            throw new ModelLoadException(path, "is a directory, expected a config.json file");
        if (!File.Exists(path))
            throw new ModelLoadException(path, "file not found");
        long length = new FileInfo(path).Length;
        if (length > MaxBytes)
            throw new ModelLoadException(path, $"config file of {length} bytes is larger than the {MaxBytes}-byte limit (wrong file?)");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllBytes(path), documentOptions: new JsonDocumentOptions { MaxDepth = 32, AllowTrailingCommas = false });
            if (node is JsonObject o) _ = o.Count; // materialize now: duplicate property names throw here
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"invalid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new ModelLoadException(path, $"invalid JSON: {e.Message}", e);
        }
        if (node is not JsonObject obj)
            throw new ModelLoadException(path, "the config is not a JSON object");
        var missing = required.Where(f => !obj.TryGetPropertyValue(f, out var v) || v is null).ToList();
        if (missing.Count > 0)
            throw new ModelLoadException(path, $"the config lacks required field(s) {string.Join(", ", missing.Select(m => $"'{m}'"))}");
        return obj;
    }
}
